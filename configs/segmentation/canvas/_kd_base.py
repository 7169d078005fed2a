# What every canvas segmentation KD config shares: the w16 student of
# pspnet_r18_w16_canvas.py (same data and schedule), the w32 teacher of
# pspnet_r18_w32_canvas.py loaded from its training run, and student-only checkpoints.
# The configs beside this one add their distill_terms.
_base_ = ['./pspnet_r18_w16_canvas.py']
model = dict(
    _delete_=True,
    type='kdzoo.Distiller',
    student={{_base_.model}},
    teacher='configs/segmentation/canvas/pspnet_r18_w32_canvas.py',
    teacher_checkpoint='work_dirs/canvas_seg_teacher/iter_2000.pth',
    distill_terms=[])
custom_hooks = [dict(type='kdzoo.StudentCheckpointHook', interval=1000, by_epoch=False)]
