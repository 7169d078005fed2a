"""Segmentation KD end to end on a tiny canvas Cityscapes-format set, through the tools:
the teacher trains, the SKD distiller (two terms) trains from its checkpoint, mmseg's
IoUMetric scores it, and the plain student config reproduces that mIoU from the
student-only checkpoint with tools/test.py."""
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
    spec = CanvasSpec(num_images=8, height=64, width=128, items=(2, 3), scale=(14, 30))
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
