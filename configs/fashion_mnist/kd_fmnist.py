# The quick-start KD student: the same student and schedule as student_fmnist.py, plus
# Hinton's KD from the teacher of teacher_fmnist.py (the distiller shell of the pair is
# handmade/_distiller.py).
_base_ = ['./handmade/_distiller.py']
model = dict(
    student_loss_weight=0.1,
    distill_terms=[
        dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0, weight=0.9),
    ])
