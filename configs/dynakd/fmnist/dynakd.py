# DynaKD on the Fashion-MNIST pool: `python tools/dynakd.py configs/dynakd/fmnist/dynakd.py`
# 1. search: the sample pool of pool_sample.py trained with DynaKDSearchHook (a theta-step on
#    a dev-split batch every 2nd iteration, one-step unrolled, Adam on the logits of theta);
# 2. evaluation: a student trained from scratch with each candidate distribution derived from
#    the searched theta, the best on the dev split written to WORK_DIR/best_config.py.
_base_ = ['./pool_sample.py']
dynakd = dict(
    search=dict(
        type='DynaKDSearchHook', batch_size=64, theta_lr=0.05, unroll_lr=None,
        interval=2, begin_epoch=0,
        dataset={{_base_.val_dataloader.dataset}}),
    candidates=['learned', dict(type='sharpened', temperature=0.5), 'argmax', 'uniform'],
    metric='accuracy/top1',
    direction='maximize',
)
