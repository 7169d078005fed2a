# SP (Tung & Mori 2019): match the row-normalised batch similarity G = F F^T of the last
# stage's maps, ||G_s - G_t||_F^2 / N^2; weight 3000 (RepDistiller / mdistiller), CE weight 1.
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    distill_terms=[
        dict(student='backbone.layer3', teacher='backbone.layer3', transforms=['sample_sim'],
             distance='l2', weight=3000.0, name='sp'),
    ])
