# The quick-start KD student: the same student and schedule as student_fmnist.py, plus
# Hinton's KD from the teacher of teacher_fmnist.py.
_base_ = ['./student_fmnist.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/fashion_mnist/teacher_fmnist.py',
    teacher_checkpoint='work_dirs/quickstart/teacher/epoch_3.pth',
    student_loss_weight=0.1,
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0, weight=0.9),
    ])
