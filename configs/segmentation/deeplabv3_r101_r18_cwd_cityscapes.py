# CWD (Shu et al., ICCV 2021) of a DeepLabV3-R101 teacher into a DeepLabV3-R18 student on
# Cityscapes, mmseg's 80k-iteration 512x1024 protocol: KL between the per-channel spatial
# distributions of the final logits, tau 4, weight 3, plus the student's own losses.
#
# Published targets (val mIoU) are in docs/segmentation.md; the CIRKD codebase trains
# DeepLabV3-R18 with its own recipe (74.21 baseline, 75.55 with CWD, teacher 78.07), which
# is not mmseg's: compare numbers of one protocol only.
#
# Teacher checkpoint: mmseg's deeplabv3_r101-d8 80k Cityscapes model, saved locally as
# checkpoints/deeplabv3_r101-d8_512x1024_80k_cityscapes.pth.
_base_ = ['mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py']

default_scope = 'mmseg'

model = dict(
    _delete_=True,
    type='kdzoo.Distiller',
    student={{_base_.model}},
    teacher='mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
    teacher_checkpoint='checkpoints/deeplabv3_r101-d8_512x1024_80k_cityscapes.pth',
    distill_terms=[
        dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg',
             transforms=['channel_dist'], distance='kl', tau=4.0, weight=3.0, name='cwd'),
    ])

custom_hooks = [dict(type='kdzoo.StudentCheckpointHook', interval=8000, by_epoch=False)]
