# Channel-wise distillation (CWD, Shu et al., ICCV 2021) of a GFL-R101 teacher (mmdet's
# multi-scale 2x model) into a GFL-R50 student on COCO, 1x schedule (12 epochs).
#
# Published target (MMRazor's CWD README, mmdet 1x schedule for the student, COCO val2017
# box mAP): teacher GFL-R101 (ms 2x) 44.7, student GFL-R50 (1x) 40.2, CWD 41.9. MMRazor
# distils the classification-head outputs (bbox_head.gfl_cls, tau 1, loss weight 5 per
# level); GFL shares that conv over the levels and kdzoo's recorder keeps one call per
# module, so this config distils the five FPN levels instead (as CWD does for its own
# detection experiments): do not expect the exact MMRazor number. See docs/detection.md.
#
#   python tools/train.py configs/detection/cwd_gfl_r101_r50_fpn_1x_coco.py
#
# Teacher checkpoint: mmdet's GFL-R101 ms-2x COCO model, saved as
# checkpoints/gfl_r101_fpn_mstrain_2x_coco.pth.
_base_ = ['mmdet::gfl/gfl_r50_fpn_1x_coco.py']

default_scope = 'mmdet'

model = dict(
    _delete_=True,
    type='kdzoo.Distiller',
    student={{_base_.model}},
    teacher='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py',
    teacher_checkpoint='checkpoints/gfl_r101_fpn_mstrain_2x_coco.pth',
    distill_terms=[
        dict(student=f'neck[{i}]', teacher=f'neck[{i}]', transforms=['channel_dist'],
             distance='kl', tau=1.0, weight=5.0, name=f'cwd_p{i + 3}') for i in range(5)
    ])

custom_hooks = [dict(type='kdzoo.StudentCheckpointHook', interval=1)]
