# The CIFAR-100 pool of DynaKD's setting: teachers resnet32x4, wrn_40_2, resnet56 and the
# teacher assistants resnet20 (from resnet56) and resnet8x4 (from resnet32x4), taught to a
# resnet8x4 student (for a resnet20 student: --cfg-options model.student.backbone.type=resnet20).
# mode='mean': the KD target is the average of the five members' logits.
_base_ = ['./split.py']
ckpt = 'work_dirs/dynakd_cifar100/teachers/{}/epoch_240.pth'
model = dict(
    type='Distiller',
    student=dict(type='ImageClassifier', backbone=dict(type='resnet8x4', num_classes=100),
                 data_preprocessor={{_base_.data_preprocessor}}),
    teachers=[
        dict(name='resnet32x4', teacher='configs/dynakd/cifar100/teacher_resnet32x4.py',
             teacher_checkpoint=ckpt.format('resnet32x4')),
        dict(name='wrn_40_2', teacher='configs/dynakd/cifar100/teacher_wrn_40_2.py',
             teacher_checkpoint=ckpt.format('wrn_40_2')),
        dict(name='resnet56', teacher='configs/dynakd/cifar100/teacher_resnet56.py',
             teacher_checkpoint=ckpt.format('resnet56')),
        dict(name='ta_resnet20', teacher='configs/dynakd/cifar100/assistant_resnet20.py',
             teacher_checkpoint=ckpt.format('assistant_resnet20')),
        dict(name='ta_resnet8x4', teacher='configs/dynakd/cifar100/assistant_resnet8x4.py',
             teacher_checkpoint=ckpt.format('assistant_resnet8x4')),
    ],
    pool=dict(mode='mean'),
    student_loss_weight=0.1,
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0, weight=0.9),
    ])
