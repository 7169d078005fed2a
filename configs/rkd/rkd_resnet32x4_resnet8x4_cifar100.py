# RKD (Park et al. 2019): distance-wise and angle-wise relations of the pooled embeddings,
# smooth-L1, weights 25 and 50 (RepDistiller / mdistiller), CE weight 1.
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    distill_terms=[
        dict(student='backbone.pool', teacher='backbone.pool', transforms=['rkd_distance'],
             distance='smooth_l1', weight=25.0, name='rkd_distance'),
        dict(student='backbone.pool', teacher='backbone.pool', transforms=['rkd_angle'],
             distance='smooth_l1', weight=50.0, name='rkd_angle'),
    ])
