# AT (Zagoruyko & Komodakis 2017): match L2-normalised spatial attention maps
# mean_c |f|^2 at every stage; beta = 1000 with AT's 1/2 gives weight 500 per stage.
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    distill_terms=[
        dict(student=f'backbone.layer{i}', teacher=f'backbone.layer{i}', transforms=['satt'],
             distance='l2', weight=500.0, name=f'at{i}') for i in (1, 2, 3)
    ])
