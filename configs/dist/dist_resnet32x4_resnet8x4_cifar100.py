# DIST (Huang et al. 2022): Pearson-correlation relations between and within classes,
# beta = gamma = 2, tau 4 (the paper's CIFAR-100 setting).
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', tau=4.0, weight=1.0,
             distance=dict(type='dist', beta=2.0, gamma=2.0)),
    ])
