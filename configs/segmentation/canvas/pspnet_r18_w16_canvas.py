# The measured segmentation student: mmseg's PSPNet (ResNetV1c-18, dilated, output stride
# 8) at a quarter of the width (16 base channels), trained from scratch on the canvas
# Cityscapes-format set (configs/_base_/datasets/canvas_cityscapes.py), 64x64 images.
# mmseg's model base config with BN instead of SyncBN and no ImageNet initialisation.
#   python tools/train.py configs/segmentation/canvas/pspnet_r18_w16_canvas.py
_base_ = [
    'mmseg::_base_/models/pspnet_r50-d8.py',
    '../../_base_/datasets/canvas_cityscapes.py',
    'mmseg::_base_/default_runtime.py',
]
default_scope = 'mmseg'
width = 16
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(depth=18, stem_channels=width, base_channels=width, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=8 * width, channels=4 * width,
                     num_classes={{_base_.num_classes}}, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=4 * width, channels=2 * width,
                        num_classes={{_base_.num_classes}}, norm_cfg=norm_cfg))

# 1000 iterations of batch 16 (16 epochs of 1000 canvases); SGD with mmseg's poly decay.
max_iters = 1000
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4),
                     clip_grad=None)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters,
                    max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
