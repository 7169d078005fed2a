"""Segmentation KD measured on the canvas Cityscapes-format set (docs/segmentation.md):

    python tools/analysis/seg_kd_canvas.py [--work-dir work_dirs/seg_kd_canvas]
        [--seeds 0 1 2] [--methods vanilla cwd dist skd skd_pair] [--jobs 2]

Writes the canvas set if ``--data-root`` is missing (tools/dataset_converters/
make_canvas_data.py with the arguments of configs/_base_/datasets/canvas_cityscapes.py),
trains the PSPNet-R18 w32 teacher once (unless ``--teacher-checkpoint``), then the w16
student vanilla and with each KD method (configs/segmentation/canvas/), each seed. Every
number is mmseg's IoUMetric mIoU on the test canvases after the last iteration (no
selection). Each run is one ``tools/train.py`` process with one thread; ``--jobs`` runs
that many at once. Writes WORK_DIR/results.json, the table docs/seg_kd_canvas_table.md and its
protocol card docs/seg_kd_canvas_card.json.
"""
import argparse
import os
import os.path as osp
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from kdzoo.benchmarks.runs import (last_metric, method_rows, train_run,  # noqa: E402
                                   write_evidence)

CANVAS = 'configs/segmentation/canvas'
TEACHER = f'{CANVAS}/pspnet_r18_w32_canvas.py'
METHODS = {
    'vanilla': (f'{CANVAS}/pspnet_r18_w16_canvas.py', 'student alone (CE)'),
    'cwd': (f'{CANVAS}/cwd_pspnet_r18_w32_w16_canvas.py', 'CWD: channel_dist + kl, tau 4, w 3'),
    'dist': (f'{CANVAS}/dist_pspnet_r18_w32_w16_canvas.py',
             'DIST on pixels: pixel_logits + dist, tau 1, w 1'),
    'skd': (f'{CANVAS}/skd_pspnet_r18_w32_w16_canvas.py',
            'SKD: pixel_sim(0.5) + mse w 0.5; pixel_logits + kl w 10'),
    'skd_pair': (f'{CANVAS}/skd_pair_pspnet_r18_w32_w16_canvas.py',
                 'SKD pair-wise term alone: pixel_sim(0.5) + mse w 0.5'),
}
CANVAS_ARGS = ['--height', '64', '--width', '64', '--items', '1', '2', '--scale', '28', '56',
               '--train', '1000', '--val', '300', '--seed', '0']


def data_options(data_root: str) -> dict:
    options = {}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options[f'{loader}.dataset.data_root'] = data_root
        options[f'{loader}.num_workers'] = 0
        options[f'{loader}.persistent_workers'] = False
    return options


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/seg_kd_canvas')
    parser.add_argument('--data-root', default='data/canvas_cityscapes')
    parser.add_argument('--teacher-checkpoint', default=None,
                        help='default: train the teacher in WORK_DIR/teacher')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    parser.add_argument('--jobs', type=int, default=2, help='runs at once (1 thread each)')
    parser.add_argument('--docs', default='docs', help='where the table and card go')
    args = parser.parse_args(argv)
    work = osp.abspath(args.work_dir)
    data_root = osp.abspath(args.data_root)
    if not osp.isdir(osp.join(data_root, 'gtFine')):
        subprocess.run([sys.executable, 'tools/dataset_converters/make_canvas_data.py',
                        'cityscapes', data_root] + CANVAS_ARGS, cwd=ROOT, check=True)
    teacher = dict(value=None)
    ckpt = args.teacher_checkpoint
    if ckpt is None:
        teacher = train_run(osp.join(work, 'teacher'), TEACHER, dict(
            data_options(data_root), **{'randomness.seed': 0}), metric='mIoU', threads=2)
        ckpt = osp.join(work, 'teacher', 'iter_2000.pth')
    ckpt = osp.abspath(ckpt)
    if teacher.get('value') is None:
        teacher = dict(value=last_metric(osp.dirname(ckpt), 'mIoU'))

    def run(method_seed):
        method, seed = method_seed
        options = dict(data_options(data_root), **{'randomness.seed': seed})
        if method != 'vanilla':
            options['model.teacher_checkpoint'] = ckpt
        return train_run(osp.join(work, method, f'seed{seed}'), METHODS[method][0], options,
                         metric='mIoU')

    todo = [(m, s) for m in args.methods for s in args.seeds]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = dict(zip(todo, pool.map(run, todo)))

    rows = method_rows(results, METHODS, args.methods, args.seeds)
    protocol = dict(
        what='Segmentation KD on the canvas Cityscapes-format set '
             '(tools/analysis/seg_kd_canvas.py)',
        data=dict(format='Cityscapes (leftImg8bit / gtFine labelTrainIds), mmseg '
                         'CityscapesDataset unchanged',
                  canvas=' '.join(CANVAS_ARGS),
                  train='1000 canvases of Fashion-MNIST training items',
                  test='300 canvases of Fashion-MNIST test items, once, after the last '
                       'iteration (no selection)',
                  classes='background + 10 item classes'),
        metric="mIoU, mmseg IoUMetric (percent)",
        teacher=dict(config=TEACHER, mIoU=teacher.get('value'), iterations=2000),
        student=dict(arch='PSPNet ResNetV1c-18 d8, 16 base channels, no pretraining',
                     iterations=1000, batch=16, optimizer='SGD 0.1 m 0.9 wd 5e-4, poly 0.9',
                     augmentation='random horizontal flip'),
        seeds=args.seeds, reported='mean +- std over seeds, last iteration',
        device=f'CPU ({platform.processor() or platform.machine()}, '
               f'{os.cpu_count()} cores), 1 process per run, 1 thread',
        codebase='kdzoo Distiller around mmseg EncoderDecoder (not the CIRKD protocol)',
        run_seconds=round(sum(sum(r['seconds']) for r in rows), 1))
    print(write_evidence(rows, protocol, work, args.docs, 'seg_kd_canvas', 'test mIoU (%)',
                         'tools/analysis/seg_kd_canvas.py'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
