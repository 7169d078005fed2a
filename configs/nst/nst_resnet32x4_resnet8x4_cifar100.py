# NST (Huang & Wang 2017): squared MMD with the polynomial kernel (x^T y)^2 between the
# L2-normalised channels of every stage; weight 50 per stage (RepDistiller / mdistiller).
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    distill_terms=[
        dict(student=f'backbone.layer{i}', teacher=f'backbone.layer{i}',
             transforms=['norm_HW'], distance=dict(type='mmd', degree=2.0, c=0.0),
             weight=50.0, name=f'nst{i}') for i in (1, 2, 3)
    ])
