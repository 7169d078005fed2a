"""Detection KD measured on the canvas COCO-format set (docs/detection.md):

    python tools/analysis/det_kd_canvas.py [--work-dir work_dirs/det_kd_canvas]
        [--seeds 0 1 2] [--methods vanilla cwd fgd pkd] [--jobs 2]

Writes the canvas set if ``--data-root`` is missing (tools/dataset_converters/
make_canvas_data.py with the arguments of configs/detection/canvas/_base_/canvas_coco.py),
trains the RetinaNet-R18 teacher once (unless ``--teacher-checkpoint``), then the narrow
student vanilla and with each KD method (configs/detection/canvas/), each seed. Every
number is mmdet's CocoMetric bbox mAP (in percent) on the test canvases after the last
epoch (no selection). Each run is one ``tools/train.py`` process with one thread;
``--jobs`` runs that many at once. Writes WORK_DIR/results.json, the table
docs/det_kd_canvas_table.md and its protocol card docs/det_kd_canvas_card.json.
"""
import argparse
import os
import os.path as osp
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from kdzoo.benchmarks.runs import (last_metric, method_rows, train_run,  # noqa: E402
                                   write_evidence)

CANVAS = 'configs/detection/canvas'
TEACHER = f'{CANVAS}/canvas_det_teacher.py'
METHODS = {
    'vanilla': (f'{CANVAS}/canvas_det_student.py', 'student alone (focal + L1)'),
    'cwd': (f'{CANVAS}/canvas_det_cwd.py', 'CWD on P3-P5: channel_dist + kl, tau 1, w 5'),
    'fgd': (f'{CANVAS}/canvas_det_fgd.py',
            'FGD on P3-P5: gt-box masks, official RetinaNet weights'),
    'pkd': (f'{CANVAS}/canvas_det_pkd.py', 'PKD on P3-P5: normalised features + mse, w 6'),
}
CANVAS_ARGS = ['--height', '64', '--width', '64', '--items', '1', '2', '--scale', '24', '48',
               '--train', '1000', '--val', '300', '--seed', '0']
METRIC = 'coco/bbox_mAP'


def data_options(data_root: str) -> dict:
    root = data_root.rstrip('/') + '/'
    options = {}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options[f'{loader}.dataset.data_root'] = root
        options[f'{loader}.num_workers'] = 0
        options[f'{loader}.persistent_workers'] = False
    for evaluator in ('val_evaluator', 'test_evaluator'):
        options[f'{evaluator}.ann_file'] = root + 'annotations/instances_val.json'
    return options


def percent(result: dict) -> dict:
    return dict(result, value=round(100 * result['value'], 2))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/det_kd_canvas')
    parser.add_argument('--data-root', default='data/canvas_coco')
    parser.add_argument('--teacher-checkpoint', default=None,
                        help='default: train the teacher in WORK_DIR/teacher')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    parser.add_argument('--jobs', type=int, default=2, help='runs at once (1 thread each)')
    parser.add_argument('--docs', default='docs', help='where the table and card go')
    args = parser.parse_args(argv)
    work = osp.abspath(args.work_dir)
    data_root = osp.abspath(args.data_root)
    if not osp.isfile(osp.join(data_root, 'annotations', 'instances_train.json')):
        subprocess.run([sys.executable, 'tools/dataset_converters/make_canvas_data.py',
                        'coco', data_root] + CANVAS_ARGS, cwd=ROOT, check=True)
    ckpt = args.teacher_checkpoint
    if ckpt is None:
        teacher = train_run(osp.join(work, 'teacher'), TEACHER, dict(
            data_options(data_root), **{'randomness.seed': 0}), metric=METRIC, threads=2)
        ckpt = osp.join(work, 'teacher', 'epoch_12.pth')
    ckpt = osp.abspath(ckpt)
    teacher_map = round(100 * last_metric(osp.dirname(ckpt), METRIC), 2)

    def run(method_seed):
        method, seed = method_seed
        options = dict(data_options(data_root), **{'randomness.seed': seed})
        if method != 'vanilla':
            options['model.teacher_checkpoint'] = ckpt
        return percent(train_run(osp.join(work, method, f'seed{seed}'), METHODS[method][0],
                                 options, metric=METRIC))

    todo = [(m, s) for m in args.methods for s in args.seeds]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = dict(zip(todo, pool.map(run, todo)))
    rows = method_rows(results, METHODS, args.methods, args.seeds)
    protocol = dict(
        what='Detection KD on the canvas COCO-format set (tools/analysis/det_kd_canvas.py)',
        data=dict(format='COCO instances (jpg + instances_{train,val}.json), mmdet '
                         'CocoDataset unchanged',
                  canvas=' '.join(CANVAS_ARGS),
                  train='1000 canvases of Fashion-MNIST training items',
                  test="300 canvases of Fashion-MNIST test items (the 'val' files), once, "
                       'after the last epoch (no selection)',
                  classes='10 item classes'),
        metric='bbox mAP@[.5:.95], mmdet CocoMetric (percent)',
        teacher=dict(config=TEACHER, checkpoint=osp.relpath(ckpt, ROOT), bbox_mAP=teacher_map,
                     epochs=12),
        student=dict(arch='RetinaNet, ResNet-18 at base_channels 16, 64-channel FPN P3-P5, '
                          '32-channel head, no pretraining',
                     epochs=12, iterations=1500, batch=8,
                     optimizer='AdamW 1e-3 wd 0.05, steps at 9 and 11, warm-up 100 it',
                     augmentation='random horizontal flip'),
        seeds=args.seeds, reported='mean +- std over seeds, last epoch',
        device=f'CPU ({platform.processor() or platform.machine()}, '
               f'{os.cpu_count()} cores), 1 process per run, 1 thread',
        codebase='kdzoo Distiller around mmdet RetinaNet (KD weights of the COCO papers, '
                 'not tuned here)',
        run_seconds=round(sum(sum(r['seconds']) for r in rows), 1))
    print(write_evidence(rows, protocol, work, args.docs, 'det_kd_canvas',
                         'test bbox mAP (%)', 'tools/analysis/det_kd_canvas.py'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
