# A teacher assistant of the pool: resnet8x4 distilled from resnet32x4 (Hinton KD, tau 4),
# 240 epochs.
# As a pool member this distiller config gives its student, with its distiller checkpoint.
_base_ = ['./split.py']
model = dict(
    type='Distiller',
    student=dict(type='ImageClassifier', backbone=dict(type='resnet8x4', num_classes=100),
                 data_preprocessor={{_base_.data_preprocessor}}),
    teacher='configs/dynakd/cifar100/teacher_resnet32x4.py',
    teacher_checkpoint='work_dirs/dynakd_cifar100/teachers/resnet32x4/epoch_240.pth',
    student_loss_weight=0.1,
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0, weight=0.9),
    ])
