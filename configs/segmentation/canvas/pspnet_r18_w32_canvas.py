# The canvas segmentation teacher: the student's PSPNet-R18 at twice its width
# (32 base channels), same data, twice the student's schedule (2000 iterations). Its
# checkpoint feeds the KD configs:
#   python tools/train.py configs/segmentation/canvas/pspnet_r18_w32_canvas.py \
#       --work-dir work_dirs/canvas_seg_teacher
_base_ = ['./pspnet_r18_w16_canvas.py']
width = 32
model = dict(
    backbone=dict(stem_channels=width, base_channels=width),
    decode_head=dict(in_channels=8 * width, channels=4 * width),
    auxiliary_head=dict(in_channels=4 * width, channels=2 * width))
max_iters = 2000
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
