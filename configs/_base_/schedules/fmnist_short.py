# A short CPU-friendly schedule for Fashion-MNIST: SGD + cosine decay.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=3, eta_min=0.0)]
train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=1)
val_cfg = dict()
test_cfg = dict()
