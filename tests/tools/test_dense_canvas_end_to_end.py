"""Dense-task KD end to end on tiny canvas sets in their real formats, through the tools:
the teacher trains, a distiller trains from its checkpoint, mmseg's IoUMetric / mmdet's
CocoMetric scores it, and the plain student config reproduces that score from the
student-only checkpoint with tools/test.py. Segmentation: SKD (two terms) on the
Cityscapes-format set; detection: FGD (ground-truth boxes from the real pipeline in the
term context) on the COCO-format set."""
import glob
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from kdzoo.datasets.canvas import CanvasSpec, write_canvas_sets

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CANVAS = 'configs/segmentation/canvas'


def options(data_root, iters):
    opts = [f'max_iters={iters}', f'train_cfg.max_iters={iters}',
            f'train_cfg.val_interval={iters}', f'default_hooks.checkpoint.interval={iters}',
            f'param_scheduler.0.end={iters}', 'default_hooks.logger.interval=1',
            'train_dataloader.batch_size=4', 'val_dataloader.batch_size=4']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={data_root}', f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False']
    return opts


def run(cmd):
    proc = subprocess.run([sys.executable] + cmd, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def scalars(work_dir):
    path = sorted(glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json')))[-1]
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_canvas_segmentation_kd_through_the_tools(tmp_path, fmnist_root):
    data = str(tmp_path / 'canvas')
    spec = CanvasSpec(num_images=8, height=64, width=64, items=(1, 2), scale=(28, 56))
    write_canvas_sets(data, 'cityscapes', [('train', spec), ('val', spec)],
                      fmnist_root=fmnist_root)
    teacher_dir = tmp_path / 'teacher'
    run(['tools/train.py', f'{CANVAS}/pspnet_r18_w32_canvas.py', '--work-dir',
         str(teacher_dir), '--cfg-options'] + options(data, 2))
    kd_dir = tmp_path / 'skd'
    run(['tools/train.py', f'{CANVAS}/skd_pspnet_r18_w32_w16_canvas.py', '--work-dir',
         str(kd_dir), '--cfg-options', f'model.teacher_checkpoint={teacher_dir}/iter_2.pth',
         'custom_hooks.0.interval=2'] + options(data, 2))
    rows = scalars(kd_dir)
    train_rows = [r for r in rows if 'loss_pair' in r]
    assert len(train_rows) == 2
    assert all(r['loss_pair'] > 0 and r['loss_pixel'] > 0 for r in train_rows)
    logged = [r['mIoU'] for r in rows if 'mIoU' in r][-1]
    student_ckpt = kd_dir / 'student_latest.pth'
    state = torch.load(student_ckpt, weights_only=False)['state_dict']
    assert not any(k.startswith(('teacher', 'student.', 'terms')) for k in state)
    out = tmp_path / 'test.json'
    run(['tools/test.py', f'{CANVAS}/pspnet_r18_w16_canvas.py', str(student_ckpt),
         '--work-dir', str(tmp_path / 'test'), '--out', str(out),
         '--cfg-options'] + options(data, 2))
    with open(out) as f:
        assert json.load(f)['mIoU'] == pytest.approx(logged, abs=1e-6)


def det_options(data_root, epochs=1):
    ann = osp.join(data_root, 'annotations')
    opts = [f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}',
            'default_hooks.logger.interval=1', 'param_scheduler.0.end=2',
            'train_dataloader.batch_size=4', 'val_dataloader.batch_size=4']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={data_root}', f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False']
    for evaluator in ('val_evaluator', 'test_evaluator'):
        opts.append(f'{evaluator}.ann_file={ann}/instances_val.json')
    return opts


def test_canvas_detection_kd_through_the_tools(tmp_path, fmnist_root):
    data = str(tmp_path / 'canvas')
    spec = CanvasSpec(num_images=8, height=128, width=128, items=(2, 3), scale=(24, 56))
    write_canvas_sets(data, 'coco', [('train', spec), ('val', spec)],
                      fmnist_root=fmnist_root)
    det = 'configs/detection/canvas'
    teacher_dir = tmp_path / 'teacher'
    run(['tools/train.py', f'{det}/canvas_det_teacher.py', '--work-dir', str(teacher_dir),
         '--cfg-options'] + det_options(data))
    kd_dir = tmp_path / 'fgd'
    # a detector trained for one epoch scores below mmdet's 0.05 threshold: keep every box
    run(['tools/train.py', f'{det}/canvas_det_fgd.py', '--work-dir', str(kd_dir),
         '--cfg-options', f'model.teacher_checkpoint={teacher_dir}/epoch_1.pth',
         'model.student.test_cfg.score_thr=0.0'] + det_options(data))
    rows = scalars(kd_dir)
    fgd = [v for r in rows for k, v in r.items() if k.startswith('loss_fgd')]
    assert fgd and all(v > 0 for v in fgd)
    logged = [r['coco/bbox_mAP'] for r in rows if 'coco/bbox_mAP' in r][-1]
    out = tmp_path / 'test.json'
    run(['tools/test.py', f'{det}/canvas_det_student.py', str(kd_dir / 'student_latest.pth'),
         '--work-dir', str(tmp_path / 'test'), '--out', str(out), '--cfg-options',
         'model.test_cfg.score_thr=0.0'] + det_options(data))
    with open(out) as f:
        assert json.load(f)['coco/bbox_mAP'] == pytest.approx(logged, abs=1e-6)
