# DKD on ImageNet, ResNet-34 -> ResNet-18 (mdistiller's configs/imagenet/r34_r18/dkd.yaml):
# alpha 1, beta 0.5, tau 1, a 1-epoch warm-up, CE weight 1.
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
             distance=dict(type='dkd', alpha=1.0, beta=0.5, warmup=1)),
    ])
