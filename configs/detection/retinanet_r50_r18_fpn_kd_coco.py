# Channel-wise distillation (CWD, Shu et al., ICCV 2021) of a RetinaNet-R50 teacher into a
# RetinaNet-R18 student on COCO, on the five FPN levels (tau 1, weight 10 per level).
#
# Everything but the model comes from mmdet's config: datasets, pipeline, evaluator,
# schedule, hooks. They are mmdet components, so the default scope stays 'mmdet' and
# kdzoo's own components are named with the 'kdzoo.' prefix ('kdzoo.Distiller',
# 'kdzoo.StudentCheckpointHook').
#
#   python tools/train.py configs/detection/retinanet_r50_r18_fpn_kd_coco.py
#
# The teacher checkpoint is mmdet's RetinaNet-R50 1x COCO model, saved locally as
# checkpoints/retinanet_r50_fpn_1x_coco.pth. The student's ResNet-18 starts from
# mmdet's ImageNet initialisation (torchvision://resnet18), as in the base config.
_base_ = ['mmdet::retinanet/retinanet_r18_fpn_1x_coco.py']

default_scope = 'mmdet'

model = dict(
    _delete_=True,
    type='kdzoo.Distiller',
    student={{_base_.model}},
    teacher='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    teacher_checkpoint='checkpoints/retinanet_r50_fpn_1x_coco.pth',
    # Both FPNs output 5 levels of 256 channels: neck[i] is level i (P3..P7).
    distill_terms=[
        dict(student=f'neck[{i}]', teacher=f'neck[{i}]', transforms=['channel_dist'],
             distance='kl', tau=1.0, weight=10.0, name=f'cwd_p{i + 3}') for i in range(5)
    ])

# Student-only checkpoints (student_epoch_N.pth) that mmdet's plain R18 config can load.
custom_hooks = [dict(type='kdzoo.StudentCheckpointHook', interval=1)]
