# Fashion-MNIST for the DynaKD pool: a dev split of 5000 images carved out of the TRAINING
# set (seeded, disjoint from every training part), used for validation during training, for
# DynaKD's theta-step and for picking candidates; the test split is read once, at the end.
# Teachers train on 20000 other training images, students on the first 4000 of those.
_base_ = ['../../_base_/datasets/fashion_mnist.py', '../../_base_/schedules/fmnist_short.py',
          '../../_base_/default_runtime.py']
split = dict(val_size=5000, seed=0)
fmnist_train = dict(type='FashionMNIST', split='train', data_root=None)
train_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='HeldOutSplit', part='train', train_size=4000,
                 dataset=dict(fmnist_train, pipeline={{_base_.train_pipeline}}), **split))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='HeldOutSplit', part='val',
                 dataset=dict(fmnist_train, pipeline={{_base_.test_pipeline}}), **split))
test_dataloader = dict(
    _delete_=True, batch_size=500, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='FashionMNIST', split='test', data_root=None,
                 pipeline={{_base_.test_pipeline}}))
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(save_best=None, max_keep_ckpts=1))
