"""FunMatch's teaching modes on Fashion-MNIST (docs/funmatch.md), in one command:

    python tools/analysis/funmatch_fmnist.py [--work-dir work_dirs/funmatch_fmnist]
        [--seeds 0 1 2] [--train-images 2000] [--epochs 20] [--patience 5 20 60] [--jobs 2]

1. The teacher: resnet20 on all 60000 training images (configs/fashion_mnist/teacher_fmnist.py,
   3 epochs), trained once.
2. The table: every teaching mode (configs/funmatch/funmatch_fmnist.py with
   ``teaching.mode=...``), one student (resnet8 at half width), one schedule (``--epochs`` on
   the first ``--train-images`` training images, AdamW + cosine + clipping at 1.0, KL at
   tau 1, no labels), each seed (``randomness.seed``: initialisation, order, views, mixup).
3. The patience curve: ``fix/rs``, ``same/ic`` and ``funmatch`` at each ``--patience``
   schedule length.

Nothing is selected: every number is the last epoch's student on the 10000 test images,
evaluated once at the end of its run (``val_interval`` = the run's length). Every run is an
ordinary ``tools/train.py`` call with ``--cfg-options``; its command is in
``WORK_DIR/<run>/command.txt`` and finished runs are found again (``result.json``).
Writes ``WORK_DIR/results.json``, ``docs/funmatch_fmnist.md``,
``docs/funmatch_fmnist_card.json`` and ``docs/funmatch_patience.png``.
"""
import argparse
import json
import os.path as osp
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from kdzoo.benchmarks.runs import mean_std, train_run  # noqa: E402
CONFIG = 'configs/funmatch/funmatch_fmnist.py'
TEACHER = 'configs/fashion_mnist/teacher_fmnist.py'
MODES = ('fix/rs', 'fix/cc', 'fix/ic_ens', 'ind/rc', 'ind/ic', 'same/rc', 'same/ic',
         'funmatch')
PATIENCE_MODES = ('fix/rs', 'same/ic', 'funmatch')


def log(message: str) -> None:
    print(time.strftime('%H:%M:%S'), message, flush=True)


def train(run_dir: str, config: str, options: dict) -> dict:
    result = train_run(run_dir, config, options)
    return dict(test_top1=result['value'], seconds=result['seconds'])


def data_options(train_images: int) -> dict:
    return {'train_dataloader.dataset.indices': train_images,
            'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
            'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False}


def student_options(mode: str, seed: int, epochs: int, train_images: int,
                    teacher_ckpt: str) -> dict:
    options = {'teaching.mode': mode, 'randomness.seed': seed,
               'model.teacher_checkpoint': teacher_ckpt,
               'train_cfg.max_epochs': epochs, 'train_cfg.val_interval': epochs,
               'param_scheduler.0.T_max': epochs,
               'default_hooks.checkpoint.interval': epochs,
               **data_options(train_images)}
    if mode != 'funmatch':
        options['teaching.mixup_alpha'] = None
    return options


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/funmatch_fmnist')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--train-images', type=int, default=2000)
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--patience', type=int, nargs='+', default=[5, 20, 60])
    parser.add_argument('--teacher-epochs', type=int, default=3)
    parser.add_argument('--jobs', type=int, default=2, help='runs in parallel (1 thread each)')
    parser.add_argument('--docs', default='docs')
    args = parser.parse_args(argv)
    start = time.time()
    work = osp.abspath(args.work_dir)

    log('teacher: resnet20 on the 60000 training images')
    teacher_dir = osp.join(work, 'teacher')
    teacher = train(teacher_dir, TEACHER, {
        'train_cfg.max_epochs': args.teacher_epochs, 'param_scheduler.0.T_max':
        args.teacher_epochs, **{k: v for k, v in data_options(0).items()
                                if 'indices' not in k}})
    teacher_ckpt = osp.join(teacher_dir, f'epoch_{args.teacher_epochs}.pth')
    log(f'teacher: test top-1 {teacher["test_top1"]:.2f}')

    runs = {}  # (mode, epochs, seed) -> options
    for mode in MODES:
        for seed in args.seeds:
            runs[(mode, args.epochs, seed)] = None
    for mode in PATIENCE_MODES:
        for epochs in args.patience:
            for seed in args.seeds:
                runs[(mode, epochs, seed)] = None

    def one(key):
        mode, epochs, seed = key
        run_dir = osp.join(work, mode.replace('/', '_'), f'e{epochs}', f'seed{seed}')
        result = train(run_dir, CONFIG, student_options(mode, seed, epochs,
                                                        args.train_images, teacher_ckpt))
        log(f'{mode} {epochs} epochs seed {seed}: {result["test_top1"]:.2f} '
            f'({result["seconds"]} s)')
        return key, result

    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(pool.map(one, sorted(runs, key=lambda k: (k[1], k[0], k[2]))))
    out = dict(teacher=teacher, seeds=args.seeds, epochs=args.epochs,
               patience=args.patience, train_images=args.train_images,
               runs={f'{m}|{e}|{s}': r for (m, e, s), r in results.items()},
               wall_seconds=round(time.time() - start, 1),  # this call (runs are cached)
               run_seconds=round(teacher['seconds'] + sum(r['seconds']
                                                           for r in results.values()), 1))
    with open(osp.join(work, 'results.json'), 'w') as f:
        json.dump(out, f, indent=1)
    write_docs(out, args, results)
    log(f'done in {out["wall_seconds"]} s')


def write_docs(out: dict, args, results: dict) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch

    lines = [f'Teacher resnet20: {out["teacher"]["test_top1"]:.2f} % test top-1.', '',
             f'| mode | test top-1 (%), {args.epochs} epochs | per seed |', '| --- | --- | --- |']
    for mode in MODES:
        values = [results[(mode, args.epochs, s)]['test_top1'] for s in args.seeds]
        m, sd = mean_std(values)
        lines.append(f'| {mode} | {m:.2f} +- {sd:.2f} | '
                     + ' / '.join(f'{v:.2f}' for v in values) + ' |')
    lines += ['', '| mode | ' + ' | '.join(f'{e} epochs' for e in args.patience) + ' |',
              '| --- |' + ' --- |' * len(args.patience)]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for mode in PATIENCE_MODES:
        stats = [mean_std(results[(mode, e, s)]['test_top1'] for s in args.seeds)
                 for e in args.patience]
        lines.append(f'| {mode} | ' + ' | '.join(f'{m:.2f} +- {sd:.2f}' for m, sd in stats)
                     + ' |')
        ax.errorbar(args.patience, [m for m, _ in stats], yerr=[sd for _, sd in stats],
                    marker='o', capsize=3, label=mode)
    ax.set_xscale('log')
    ax.minorticks_off()
    ax.set_xticks(args.patience)
    ax.set_xticklabels([str(e) for e in args.patience])
    ax.set_xlabel('epochs')
    ax.set_ylabel('test top-1 (%)')
    ax.set_title(f'Fashion-MNIST, {args.train_images} training images')
    ax.legend()
    fig.tight_layout()
    fig.savefig(osp.join(args.docs, 'funmatch_patience.png'), dpi=120)
    with open(osp.join(args.docs, 'funmatch_fmnist.md'), 'w') as f:
        f.write('<!-- written by tools/analysis/funmatch_fmnist.py -->\n' + '\n'.join(lines)
                + '\n')
    card = dict(
        what='FunMatch teaching modes on Fashion-MNIST (tools/analysis/funmatch_fmnist.py)',
        data=dict(dataset='Fashion-MNIST (real, IDX files)',
                  student_train=f'the first {args.train_images} training images',
                  teacher_train='all 60000 training images',
                  test='the 10000 test images, once per run, last epoch (no selection)'),
        teacher=dict(arch='resnet20', epochs=args.teacher_epochs,
                     optimizer='SGD 0.1 momentum 0.9 nesterov wd 5e-4, cosine, batch 128',
                     augmentation='random crop 28 pad 2 + flip'),
        student=dict(arch='resnet8 width 0.5', batch=128,
                     optimizer='AdamW lr 3e-3 wd 1e-4, cosine to 0, grad clip 1.0',
                     loss='KL(p_t || p_s) at tau 1 on logits, no labels'),
        teaching=dict(size=28, crop_fraction=0.875, inception_scale=[0.25, 1.0],
                      mixup='Beta(1, 1), one lam per batch, neighbour in batch',
                      ens_crops=8),
        epochs=dict(table=args.epochs, patience=args.patience),
        seeds=args.seeds, selection='none: last epoch',
        device=dict(kind='cpu', processor=platform.processor() or platform.machine(),
                    threads_per_run=1, parallel_runs=args.jobs, torch=torch.__version__),
        run_seconds=out['run_seconds'],
        note='run_seconds: the wall time of every run added up (2 runs at a time, 1 thread '
             'each; the machine was shared, so single runs vary)')
    with open(osp.join(args.docs, 'funmatch_fmnist_card.json'), 'w') as f:
        json.dump(card, f, indent=1)


if __name__ == '__main__':
    main()
