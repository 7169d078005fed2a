# Canvas detection teacher: RetinaNet-R18 (64-channel FPN P3-P5), trained from scratch.
#   python tools/train.py configs/detection/canvas/canvas_det_teacher.py
# writes work_dirs/canvas_det_teacher/epoch_12.pth, the teacher of the canvas KD configs.
_base_ = ['_base_/canvas_coco.py', '_base_/retinanet_canvas.py']
