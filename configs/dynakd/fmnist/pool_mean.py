# A 4-member pool: three teachers of different capacity (resnet32 467k, resnet20 272k,
# resnet14 175k parameters) and one teacher assistant (resnet8, 78k, distilled from resnet32),
# taught to the half-width resnet8 student of student.py. mode='mean': every member runs and
# the KD target is the average of their logits (the classic multi-teacher baseline).
_base_ = ['./student.py']
ckpt = 'work_dirs/dynakd_fmnist/teachers/{}/epoch_3.pth'
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teachers=[
        dict(name='resnet32', teacher='configs/dynakd/fmnist/teacher_resnet32.py',
             teacher_checkpoint=ckpt.format('resnet32')),
        dict(name='resnet20', teacher='configs/dynakd/fmnist/teacher_resnet20.py',
             teacher_checkpoint=ckpt.format('resnet20')),
        dict(name='resnet14', teacher='configs/dynakd/fmnist/teacher_resnet14.py',
             teacher_checkpoint=ckpt.format('resnet14')),
        dict(name='ta_resnet8', teacher='configs/dynakd/fmnist/assistant_resnet8.py',
             teacher_checkpoint=ckpt.format('assistant_resnet8')),
    ],
    pool=dict(mode='mean'),
    student_loss_weight=0.1,
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0, weight=0.9),
    ])
