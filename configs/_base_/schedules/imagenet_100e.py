# ImageNet: SGD, 100 epochs, lr 0.1 (batch 256) / 10 at epochs 30, 60, 90.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1)]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
