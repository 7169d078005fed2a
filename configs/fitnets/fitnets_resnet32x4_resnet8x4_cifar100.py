# FitNets (Romero et al. 2015): regress the teacher's middle feature map through a learnable
# 1x1 conv connector with MSE.
_base_ = ['../cifar100/resnet8x4_cifar100.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/cifar100/resnet32x4_cifar100.py',
    teacher_checkpoint='checkpoints/resnet32x4_cifar100.pth',
    distill_terms=[
        dict(student='backbone.layer2', teacher='backbone.layer2', distance='l2',
             weight=100.0, connector=dict(type='ConvConnector', in_channels=128,
                                          out_channels=128)),
    ])
