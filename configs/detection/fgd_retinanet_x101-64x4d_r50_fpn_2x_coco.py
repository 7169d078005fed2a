# FGD (Yang et al., "Focal and Global Knowledge Distillation for Detectors", CVPR 2022) of a
# RetinaNet-X101-64x4d teacher into a RetinaNet-R50 student on COCO, 2x schedule (24 epochs,
# mmdet's retinanet_r50_fpn_2x_coco), one FGD term per FPN level P3..P7.
#
# Published target (FGD paper Table 2 / the official repo's README, mmdet 2x schedule,
# box mAP on COCO val2017): teacher RetinaNet-X101 41.0, student RetinaNet-R50 37.4,
# FGD 40.7. See docs/detection.md (numbers quoted from memory are marked there).
#
# The official run also initialises the student's neck and head from the teacher
# (init_student=True in its distiller); kdzoo does not: the student starts from mmdet's
# ImageNet backbone, as in its own config. Expect that difference to cost some mAP.
#
#   python tools/train.py configs/detection/fgd_retinanet_x101-64x4d_r50_fpn_2x_coco.py
#
# Teacher checkpoint: mmdet's RetinaNet-X101-64x4d 1x COCO model (the one the official
# config downloads), saved as checkpoints/retinanet_x101_64x4d_fpn_1x_coco.pth.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']

default_scope = 'mmdet'

# The official FGD settings for RetinaNet: temperature 0.5, alpha (foreground) 1e-3,
# beta (background) 5e-4, gamma (attention) 1e-3, lambda (global) 5e-6.
fgd = dict(type='fgd', in_channels=256, temp=0.5, alpha=0.001, beta=0.0005, gamma=0.001,
           lambd=0.000005)

model = dict(
    _delete_=True,
    type='kdzoo.Distiller',
    student={{_base_.model}},
    teacher='mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py',
    teacher_checkpoint='checkpoints/retinanet_x101_64x4d_fpn_1x_coco.pth',
    # neck[i] is FPN level P(i+3), 256 channels on both sides; the boxes come from the
    # batch (the distiller passes gt_boxes / img_shapes to every term).
    distill_terms=[
        dict(student=f'neck[{i}]', teacher=f'neck[{i}]', distance=fgd, tau=1.0, weight=1.0,
             name=f'fgd_p{i + 3}') for i in range(5)
    ])

custom_hooks = [dict(type='kdzoo.StudentCheckpointHook', interval=1)]
