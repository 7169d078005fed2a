# DKD (Zhao et al. 2022): target-class + non-target-class KD, alpha 1, beta 8, tau 4,
# linear warm-up of the KD loss over 20 epochs.
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', tau=4.0, weight=1.0,
             distance=dict(type='dkd', alpha=1.0, beta=8.0, warmup=20)),
    ])
