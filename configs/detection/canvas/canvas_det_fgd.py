# FGD (Yang et al., CVPR 2022) on the canvas set: the canvas RetinaNet-R18 teacher into the
# narrow student (canvas_det_student.py), one FGD term per FPN level (64 channels), with
# the official RetinaNet weights (temp 0.5, alpha 1e-3, beta 5e-4, gamma 1e-3, lambda
# 5e-6; not tuned here). The distiller passes the batch's boxes to the terms.
#   python tools/train.py configs/detection/canvas/canvas_det_teacher.py   # first
#   python tools/train.py configs/detection/canvas/canvas_det_fgd.py
# Teacher checkpoint: work_dirs/canvas_det_teacher/epoch_12.pth (the teacher run's last).
_base_ = ['canvas_det_student.py']

fgd = dict(type='fgd', in_channels=64, temp=0.5, alpha=0.001, beta=0.0005, gamma=0.001,
           lambd=0.000005)

model = dict(
    _delete_=True,
    type='kdzoo.Distiller',
    student={{_base_.model}},
    teacher='configs/detection/canvas/canvas_det_teacher.py',
    teacher_checkpoint='work_dirs/canvas_det_teacher/epoch_12.pth',
    distill_terms=[
        dict(student=f'neck[{i}]', teacher=f'neck[{i}]', distance=fgd, tau=1.0, weight=1.0,
             name=f'fgd_p{i + 3}') for i in range(3)
    ])

custom_hooks = [dict(type='kdzoo.StudentCheckpointHook', interval=3)]
