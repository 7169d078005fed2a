# PKD (Cao et al., "PKD: General Distillation Framework for Object Detectors via Pearson
# Correlation Coefficient", NeurIPS 2022) of a RetinaNet-X101-64x4d teacher into a
# RetinaNet-R50 student on COCO, 2x schedule, one term per FPN level P3..P7.
#
# Published target (MMRazor's PKD README / the paper, mmdet 2x schedule, COCO val2017 box
# mAP): teacher RetinaNet-X101 41.0, student RetinaNet-R50 37.4, PKD 40.8 -- quoted from
# memory, UNVERIFIED (see docs/detection.md).
#
# The distance 'pkd' is MMRazor's PKDLoss: each channel standardised over (N, H, W), then
# MSE / 2; the term weight is PKDLoss's loss_weight. The loss weight of MMRazor's RetinaNet
# config is not verified here (6 is our recollection; check it before quoting a result).
#
#   python tools/train.py configs/detection/pkd_retinanet_x101-64x4d_r50_fpn_2x_coco.py
#
# Teacher checkpoint: mmdet's RetinaNet-X101-64x4d 1x COCO model, saved as
# checkpoints/retinanet_x101_64x4d_fpn_1x_coco.pth.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_2x_coco.py']

default_scope = 'mmdet'

model = dict(
    _delete_=True,
    type='kdzoo.Distiller',
    student={{_base_.model}},
    teacher='mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py',
    teacher_checkpoint='checkpoints/retinanet_x101_64x4d_fpn_1x_coco.pth',
    distill_terms=[
        dict(student=f'neck[{i}]', teacher=f'neck[{i}]', distance='pkd', tau=1.0, weight=6.0,
             name=f'pkd_p{i + 3}') for i in range(5)
    ])

custom_hooks = [dict(type='kdzoo.StudentCheckpointHook', interval=1)]
