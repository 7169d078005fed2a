# DIST on ImageNet, ResNet-34 -> ResNet-18 (the DIST paper's baseline ImageNet setting):
# beta = gamma = 1, tau 1, CE weight 1.
_base_ = ['./resnet18_imagenet.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    # torchvision's ResNet-34 (IMAGENET1K_V1, 73.31 top-1): save
    # torchvision.models.resnet34(weights='IMAGENET1K_V1').state_dict() to this file
    teacher=dict(type='TorchvisionTeacher', name='resnet34', num_classes=1000),
    teacher_checkpoint='checkpoints/resnet34_imagenet.pth',
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', tau=1.0, weight=1.0,
             distance=dict(type='dist', beta=1.0, gamma=1.0)),
    ])
