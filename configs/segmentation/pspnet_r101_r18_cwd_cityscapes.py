# Channel-wise distillation (CWD, Shu et al., ICCV 2021) of a PSPNet-R101 teacher into a
# PSPNet-R18 student on Cityscapes: KL between the per-channel spatial distributions of the
# final logits (tau 4, weight 3), plus the student's own cross-entropy losses.
#
# Datasets, pipeline, evaluator, schedule and hooks are mmseg's, so the default scope stays
# 'mmseg' and kdzoo's components are named with the 'kdzoo.' prefix.
#
#   python tools/train.py configs/segmentation/pspnet_r101_r18_cwd_cityscapes.py
#
# The teacher checkpoint is mmseg's PSPNet-R101-D8 80k Cityscapes model, saved locally as
# checkpoints/pspnet_r101-d8_512x1024_80k_cityscapes.pth. The student's ResNet-18 starts
# from mmseg's ImageNet initialisation (open-mmlab://resnet18_v1c), as in the base config.
# Single-GPU runs: MMEngine turns the student's SyncBN into BN; the teacher runs in eval
# mode, where SyncBN is plain BN.
_base_ = ['mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py']

default_scope = 'mmseg'

model = dict(
    _delete_=True,
    type='kdzoo.Distiller',
    student={{_base_.model}},
    teacher='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
    teacher_checkpoint='checkpoints/pspnet_r101-d8_512x1024_80k_cityscapes.pth',
    distill_terms=[
        # Both decode heads end in a 1x1 conv to the 19 class logits.
        dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg',
             transforms=['channel_dist'], distance='kl', tau=4.0, weight=3.0, name='cwd'),
    ])

# Student-only checkpoints (student_iter_N.pth) that mmseg's plain R18 config can load.
custom_hooks = [dict(type='kdzoo.StudentCheckpointHook', interval=8000, by_epoch=False)]
