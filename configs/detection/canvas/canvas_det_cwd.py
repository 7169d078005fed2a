# CWD (Shu et al., ICCV 2021) on the canvas set: the canvas RetinaNet-R18 teacher into the
# narrow student (canvas_det_student.py), on the three FPN levels, tau 1, weight 5 per
# level (MMRazor's GFL setting; not tuned here).
#   python tools/train.py configs/detection/canvas/canvas_det_teacher.py   # first
#   python tools/train.py configs/detection/canvas/canvas_det_cwd.py
# Teacher checkpoint: work_dirs/canvas_det_teacher/epoch_12.pth (the teacher run's last).
_base_ = ['canvas_det_student.py']

model = dict(
    _delete_=True,
    type='kdzoo.Distiller',
    student={{_base_.model}},
    teacher='configs/detection/canvas/canvas_det_teacher.py',
    teacher_checkpoint='work_dirs/canvas_det_teacher/epoch_12.pth',
    distill_terms=[
        dict(student=f'neck[{i}]', teacher=f'neck[{i}]', transforms=['channel_dist'],
             distance='kl', tau=1.0, weight=5.0, name=f'cwd_p{i + 3}') for i in range(3)
    ])

custom_hooks = [dict(type='kdzoo.StudentCheckpointHook', interval=3)]
