# A teacher assistant of the pool: resnet20 distilled from resnet56 (Hinton KD, tau 4),
# 240 epochs.
# As a pool member this distiller config gives its student, with its distiller checkpoint.
_base_ = ['./split.py']
model = dict(
    type='Distiller',
    student=dict(type='ImageClassifier', backbone=dict(type='resnet20', num_classes=100),
                 data_preprocessor={{_base_.data_preprocessor}}),
    teacher='configs/dynakd/cifar100/teacher_resnet56.py',
    teacher_checkpoint='work_dirs/dynakd_cifar100/teachers/resnet56/epoch_240.pth',
    student_loss_weight=0.1,
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0, weight=0.9),
    ])
