# KD (Hinton et al. 2015): KL between softened logits; CE weight 0.1, KD weight 0.9, tau 4.
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    student_loss_weight=0.1,
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0, weight=0.9),
    ])
