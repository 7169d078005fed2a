"""Sparse training (Auto-KD's acceleration 2) on Fashion-MNIST (docs/benchmarks.md):

    python tools/analysis/sparse_kd_fmnist.py --teacher-checkpoint CKPT
        [--work-dir work_dirs/sparse_kd_fmnist] [--seeds 0 1 2] [--sparsity 0.5 0.8]

KD (configs/fashion_mnist/kd_fmnist.py: resnet20 -> resnet8 at half width, 10k training
images, 10 epochs) dense and with sparse training at each ``--sparsity``
(configs/fashion_mnist/kd_fmnist_sparse.py: random masks growing on the cubic schedule
over the first half of the run, the stem and the classifier kept dense), each seed; the last epoch's test top-1 (evaluated once, at the end).
Then, in one process, the median time of a training step (batch 128) and the bytes of the
masks, dense against sparse. Writes ``WORK_DIR/results.json`` and prints a markdown table.
"""
import argparse
import json
import os.path as osp
import platform
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from kdzoo.benchmarks.runs import mean_std, train_run  # noqa: E402

CONFIG = 'configs/fashion_mnist/kd_fmnist.py'
SPARSE_CONFIG = 'configs/fashion_mnist/kd_fmnist_sparse.py'
EXCLUDE = ['backbone.conv1', 'backbone.fc']


def step_times(teacher_ckpt: str, sparsity: float, reps: int = 30) -> dict:
    """Median train-step ms of the KD distiller, dense and with masks applied as the hook
    applies them (after every step), and the masks' bytes."""
    import torch
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper

    from kdzoo.engine.sparse import prunable_weights
    from kdzoo.models import set_config_dir
    from kdzoo.registry import MODELS
    from kdzoo.utils import register_all_modules
    register_all_modules()
    cfg = set_config_dir(Config.fromfile(osp.join(ROOT, CONFIG)))
    cfg.model.teacher_checkpoint = teacher_ckpt
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    weights = prunable_weights(model.student, EXCLUDE)
    masks = {n: torch.rand(w.shape) >= sparsity for n, w in weights.items()}
    batch = dict(inputs=torch.randint(0, 256, (128, 1, 28, 28), dtype=torch.uint8),
                 data_samples=dict(gt_label=torch.randint(0, 10, (128,))))
    times = {'dense': [], 'sparse': []}
    for rep in range(reps + 2):
        for kind in times:
            start = time.perf_counter()
            model.train_step(batch, wrapper)
            if kind == 'sparse':
                with torch.no_grad():
                    for name, weight in weights.items():
                        weight.mul_(masks[name])
            if rep >= 2:
                times[kind].append((time.perf_counter() - start) * 1000)
    return dict(dense_ms=statistics.median(times['dense']),
                sparse_ms=statistics.median(times['sparse']),
                mask_bytes=sum(m.numel() for m in masks.values()),  # bool: 1 byte each
                weight_bytes=sum(w.numel() * w.element_size() for w in weights.values()),
                threads=torch.get_num_threads())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--teacher-checkpoint', required=True)
    parser.add_argument('--work-dir', default='work_dirs/sparse_kd_fmnist')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--sparsity', type=float, nargs='+', default=[0.5, 0.8])
    parser.add_argument('--docs', default='docs', help='where the table and card go')
    args = parser.parse_args(argv)
    work = osp.abspath(args.work_dir)
    start = time.time()
    rows, runs = {}, []
    for sparsity in [0.0] + args.sparsity:
        name = 'KD dense' if sparsity == 0 else f'KD, {sparsity:.0%} sparse'
        values = []
        for seed in args.seeds:
            options = {'randomness.seed': seed,
                       'model.teacher_checkpoint': osp.abspath(args.teacher_checkpoint),
                       'train_cfg.val_interval': 10,
                       'train_dataloader.num_workers': 0,
                       'train_dataloader.persistent_workers': False,
                       'val_dataloader.num_workers': 0,
                       'val_dataloader.persistent_workers': False}
            if sparsity:
                options['custom_hooks.1.sparsity'] = sparsity
            run = train_run(osp.join(work, f's{sparsity}', f'seed{seed}'),
                            SPARSE_CONFIG if sparsity else CONFIG, options)
            values.append(run['value'])
            runs.append(run)
            print(f'{name} seed {seed}: {run["value"]:.2f} ({run["seconds"]} s)', flush=True)
        rows[name] = dict(values=values, steps=step_times(args.teacher_checkpoint, sparsity)
                          if sparsity else None)
    lines = ['| run | test top-1 (%) | per seed | step ms dense / sparse | masks / weights |',
             '| --- | --- | --- | --- | --- |']
    for name, row in rows.items():
        m, sd = mean_std(row['values'])
        steps = row['steps']
        speed = (f'{steps["dense_ms"]:.1f} / {steps["sparse_ms"]:.1f}' if steps else '')
        memory = (f'{steps["mask_bytes"] / 1024:.0f} KiB / {steps["weight_bytes"] / 1024:.0f} '
                  f'KiB' if steps else '')
        lines.append(f'| {name} | {m:.2f} +- {sd:.2f} | '
                     + ' / '.join(f'{v:.2f}' for v in row['values']) + f' | {speed} | {memory} |')
    table = '\n'.join(lines)
    print(table)
    out = dict(rows=rows, table=table, seeds=args.seeds, wall_seconds=round(time.time() - start),
               protocol=dict(config=CONFIG, student='resnet8 width 0.5', teacher='resnet20',
                             train_images=10000, epochs=10, batch=128,
                             selection='last epoch, test set once',
                             schedule='cubic over the first half, interval 10 iterations',
                             dense_layers=EXCLUDE,
                             device=dict(kind='cpu', processor=platform.processor()
                                         or platform.machine(), threads_per_run=1)))
    with open(osp.join(work, 'results.json'), 'w') as f:
        json.dump(out, f, indent=1)
    card = dict(out['protocol'], seeds=args.seeds, sparsity=args.sparsity,
                run_seconds=round(sum(r['seconds'] for r in runs), 1),
                step_timing='median of 30 interleaved train steps, batch 128, one process, '
                            'torch threads as printed in results.json')
    with open(osp.join(args.docs, 'sparse_kd_fmnist_card.json'), 'w') as f:
        json.dump(card, f, indent=1)
    with open(osp.join(args.docs, 'sparse_kd_fmnist.md'), 'w') as f:
        f.write('<!-- written by tools/analysis/sparse_kd_fmnist.py; protocol: '
                'sparse_kd_fmnist_card.json -->\n' + table + '\n')


if __name__ == '__main__':
    main()
