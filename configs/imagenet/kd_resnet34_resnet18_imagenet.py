# KD on ImageNet, ResNet-34 -> ResNet-18 (mdistiller's configs/imagenet/r34_r18/kd.yaml):
# tau 1, KD weight 0.5, CE weight 0.5; 100 epochs, SGD lr 0.1 per 256 images.
_base_ = ['./resnet18_imagenet.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    # torchvision's ResNet-34 (IMAGENET1K_V1, 73.31 top-1): save
    # torchvision.models.resnet34(weights='IMAGENET1K_V1').state_dict() to this file
    teacher=dict(type='TorchvisionTeacher', name='resnet34', num_classes=1000),
    teacher_checkpoint='checkpoints/resnet34_imagenet.pth',
    student_loss_weight=0.5,
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=1.0, weight=0.5),
    ])
