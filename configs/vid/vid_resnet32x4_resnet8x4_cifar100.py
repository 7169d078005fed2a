# VID (Ahn et al. 2019): at every stage, the teacher map's Gaussian likelihood under a mean
# regressed from the student (three 1x1 convs) and a learned per-channel variance (initial
# 5.0); weight 1 per stage, CE weight 1 (RepDistiller / mdistiller).
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    distill_terms=[
        dict(student=f'backbone.layer{i}', teacher=f'backbone.layer{i}',
             connector=dict(type='VIDRegressor', in_channels=c, out_channels=c),
             distance=dict(type='vid', num_channels=c, init_var=5.0), weight=1.0,
             name=f'vid{i}') for i, c in ((1, 64), (2, 128), (3, 256))
    ])
