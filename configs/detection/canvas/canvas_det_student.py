# Canvas detection student alone (the vanilla baseline of the KD configs): RetinaNet with a
# ResNet-18 at base_channels 16, the teacher's 64-channel FPN, a 32-channel head.
#   python tools/train.py configs/detection/canvas/canvas_det_student.py
_base_ = ['_base_/canvas_coco.py', '_base_/retinanet_canvas.py']

model = dict(
    backbone=dict(base_channels=16),
    neck=dict(in_channels=[16, 32, 64, 128]),
    bbox_head=dict(feat_channels=32))
