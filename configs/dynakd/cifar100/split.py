# CIFAR-100 for the DynaKD pool (the paper's setting): a dev split of 5000 images carved out
# of the 50000 training images (seeded, disjoint from the training part) for validation, the
# theta-step and every pick; the test split is read once, at the end.
_base_ = ['../../_base_/datasets/cifar100.py', '../../_base_/schedules/cifar100_240e.py',
          '../../_base_/default_runtime.py']
split = dict(val_size=5000, seed=0)
cifar_train = dict(type='CIFAR100', split='train', data_root={{_base_.data_root}})
train_dataloader = dict(
    dataset=dict(_delete_=True, type='HeldOutSplit', part='train',
                 dataset=dict(cifar_train, pipeline={{_base_.train_pipeline}}), **split))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='HeldOutSplit', part='val',
                 dataset=dict(cifar_train, pipeline={{_base_.test_pipeline}}), **split))
test_dataloader = dict(
    _delete_=True, batch_size=256, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CIFAR100', split='test', data_root={{_base_.data_root}},
                 pipeline={{_base_.test_pipeline}}))
