# DynaKD on CIFAR-100: `python tools/dynakd.py configs/dynakd/cifar100/dynakd.py --test`.
# The search trains the sample pool for 240 epochs with a theta-step (one-step unrolled,
# Adam on the logits of theta, DARTS's rate) before every iteration on dev-split batches;
# the evaluation stage trains a student from scratch per candidate and keeps the best on the
# dev split. Shorten the search with --cfg-options train_cfg.max_epochs=... (and the
# schedule's milestones), as NAS searches usually do.
_base_ = ['./pool_sample.py']
dynakd = dict(
    search=dict(type='DynaKDSearchHook', batch_size=64, theta_lr=3e-4, unroll_lr=None,
                interval=1, begin_epoch=0, dataset={{_base_.val_dataloader.dataset}}),
    candidates=['learned', dict(type='sharpened', temperature=0.5), 'argmax', 'uniform'],
    metric='accuracy/top1',
    direction='maximize',
)
