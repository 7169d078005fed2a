# FGD (Yang et al., CVPR 2022) of a Cascade Mask R-CNN X101-64x4d teacher into a Faster
# R-CNN R50 student on COCO, 2x schedule, one FGD term per FPN level (P2..P6).
#
# Published target (FGD paper Table 2 / the official repo's README, mmdet 2x schedule, COCO
# val2017 box mAP): teacher Cascade Mask R-CNN X101 47.3, student Faster R-CNN R50 38.4,
# FGD 42.0 -- quoted from memory, see docs/detection.md. As for RetinaNet, the official run
# initialises the student's neck and heads from the teacher; kdzoo does not.
#
#   python tools/train.py configs/detection/fgd_faster-rcnn_cascade-mask-x101_r50_fpn_2x_coco.py
#
# Teacher checkpoint: mmdet's Cascade Mask R-CNN X101-64x4d 20e COCO model (the FGD
# teacher), saved as checkpoints/cascade_mask_rcnn_x101_64x4d_fpn_20e_coco.pth.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py']

default_scope = 'mmdet'

# The official FGD settings for the two-stage detectors: temperature 0.5, alpha 5e-5,
# beta 2.5e-5, gamma 5e-5, lambda 5e-7 (from memory of the official config, unverified).
fgd = dict(type='fgd', in_channels=256, temp=0.5, alpha=0.00005, beta=0.000025,
           gamma=0.00005, lambd=0.0000005)

model = dict(
    _delete_=True,
    type='kdzoo.Distiller',
    student={{_base_.model}},
    teacher='mmdet::cascade_rcnn/cascade-mask-rcnn_x101-64x4d_fpn_20e_coco.py',
    teacher_checkpoint='checkpoints/cascade_mask_rcnn_x101_64x4d_fpn_20e_coco.pth',
    distill_terms=[
        dict(student=f'neck[{i}]', teacher=f'neck[{i}]', distance=fgd, tau=1.0, weight=1.0,
             name=f'fgd_p{i + 2}') for i in range(5)
    ])

custom_hooks = [dict(type='kdzoo.StudentCheckpointHook', interval=1)]
