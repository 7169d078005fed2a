# Hinton KD from ONE pool member (the "best single teacher" rows): the student of
# student.py, the teacher chosen with --cfg-options model.teacher=... model.teacher_checkpoint=...
_base_ = ['./student.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/dynakd/fmnist/teacher_resnet32.py',
    teacher_checkpoint='work_dirs/dynakd_fmnist/teachers/resnet32/epoch_3.pth',
    student_loss_weight=0.1,
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0, weight=0.9),
    ])
