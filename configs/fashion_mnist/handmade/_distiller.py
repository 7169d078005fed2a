# The Fashion-MNIST quick-start pair as a distiller with no terms yet: the resnet20 teacher
# of teacher_fmnist.py and the student of student_fmnist.py (resnet8 at half width, 10k
# training images, 10 epochs). The quick-start KD (../kd_fmnist.py) and the hand-made rows
# of docs/search.md (searched vs hand-made) add their terms; the schedule stays the
# student's.
_base_ = ['../student_fmnist.py']
model = dict(
    _delete_=True,
    type='Distiller',
    student={{_base_.model}},
    teacher='configs/fashion_mnist/teacher_fmnist.py',
    teacher_checkpoint='work_dirs/quickstart/teacher/epoch_3.pth',
    distill_terms=[])
