"""A searched distiller against the hand-made ones under full training, on Fashion-MNIST
(docs/search.md, "Searched vs hand-made"):

    python tools/analysis/searched_vs_handmade_fmnist.py
        [--work-dir work_dirs/searched_vs_handmade_fmnist] [--teacher-checkpoint CKPT]
        [--seeds 0 1 2] [--jobs 2] [--n-trials 16] [--proxy]

1. The teacher: resnet20 on all training images (configs/fashion_mnist/teacher_fmnist.py),
   trained once unless ``--teacher-checkpoint``.
2. The search: ``tools/search.py configs/search/mcts_vs_handmade_fmnist.py`` (MCTS on a
   2-epoch proxy, scored on a validation split carved from the training set; the test
   split is not read).
3. The table: the student alone, the hand-made rows (KD, DKD, DIST, FitNets, AT, KD+LS,
   each with its paper's defaults: configs/fashion_mnist/kd_fmnist.py and
   configs/fashion_mnist/handmade/) and the search's ``best_full_config.py``, all with the
   same student and schedule (resnet8 at half width, 10k images, 10 epochs), each seed.

Nothing is selected on the test split: every number is the last epoch's student on the
10000 test images, evaluated once at the end of its run. Writes WORK_DIR/results.json,
docs/searched_vs_handmade_fmnist_table.md and its protocol card
docs/searched_vs_handmade_fmnist_card.json.

``--proxy`` scores the same rows the way the search scored its trials instead (each
config with the search config's ``search.validation`` and ``search.proxy`` applied by
kdzoo's own functions: 2 epochs, validation split, no test images): does the proxy rank
the hand-made distillers as the full training does? Writes WORK_DIR/proxy/results.json and
docs/searched_vs_handmade_fmnist_proxy_{table.md,card.json}.
"""
import argparse
import json
import os
import os.path as osp
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from kdzoo.benchmarks.runs import (evaluate_checkpoint, method_rows, train_run,  # noqa: E402
                                   write_evidence)

TEACHER = 'configs/fashion_mnist/teacher_fmnist.py'
SEARCH = 'configs/search/mcts_vs_handmade_fmnist.py'
HANDMADE = 'configs/fashion_mnist/handmade'
METHODS = {
    'vanilla': ('configs/fashion_mnist/student_fmnist.py', 'student alone (CE)'),
    'kd': ('configs/fashion_mnist/kd_fmnist.py', 'KD: kl, tau 4, w 0.9, CE 0.1'),
    'dkd': (f'{HANDMADE}/dkd_fmnist.py', 'DKD: alpha 1, beta 8, tau 4'),
    'dist': (f'{HANDMADE}/dist_fmnist.py', 'DIST: beta 2, gamma 2, tau 4'),
    'fitnets': (f'{HANDMADE}/fitnets_fmnist.py', 'FitNets: layer2 hint, 1x1 conv, l2 w 100'),
    'at': (f'{HANDMADE}/at_fmnist.py', 'AT: satt + l2 at 3 stages, w 500'),
    'kd_ls': (f'{HANDMADE}/kd_ls_fmnist.py', 'KD+LS: standardize(2) + kl, w 9, CE 0.1'),
    'searched': (None, 'MCTS best (proxy + validation split), trained in full'),
}
EPOCHS = 10


def run_options(seed: int) -> dict:
    return {'randomness.seed': seed, 'train_cfg.val_interval': EPOCHS,
            'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
            'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False}


def searched_choice(config: str) -> str:
    """The ``# trial N: ...`` line of a search's config header."""
    with open(config) as f:
        for line in f:
            if line.startswith('# trial '):
                return line[2:].strip()
    raise RuntimeError(f'{config}: no "# trial" line in its header')


def proxy_config(config: str, out_dir: str) -> str:
    """``config`` as the search's trials train (its validation split and proxy applied by
    the functions ``tools/search.py`` uses), dumped to ``out_dir/config.py``."""
    from mmengine.config import Config
    from kdzoo.search.settings import apply_proxy, apply_validation, search_settings
    settings = search_settings(Config.fromfile(osp.join(ROOT, SEARCH)).get('search'))
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg, proxy = apply_validation(cfg, settings['validation'], settings['proxy'])
    cfg = apply_proxy(cfg, proxy)
    cfg.pop('search', None)
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, 'config.py')
    cfg.dump(path)
    return path


def table_means(path: str) -> dict:
    """method -> mean of a table written by :func:`write_evidence` (empty if missing)."""
    if not osp.isfile(path):
        return {}
    means = {}
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            if len(cells) >= 3 and '+-' in cells[2]:
                means[cells[0]] = float(cells[2].split('+-')[0])
    return means


def rank_agreement(rows: list, full_means: dict) -> dict:
    """How well the proxy ranks the rows: the mean Spearman correlation between two seeds
    over the rows, and between the proxy's means and the full training's means."""
    from itertools import combinations
    from scipy.stats import spearmanr
    n_seeds = len(rows[0]['values'])
    pairs = [spearmanr([r['values'][a] for r in rows], [r['values'][b] for r in rows])[0]
             for a, b in combinations(range(n_seeds), 2)]
    out = dict(rows=len(rows),
               seed_to_seed_spearman=round(float(sum(pairs) / len(pairs)), 3) if pairs else None)
    common = [r for r in rows if r['method'] in full_means]
    if len(common) > 2:
        out['proxy_vs_full_spearman'] = round(float(spearmanr(
            [r['mean'] for r in common], [full_means[r['method']] for r in common])[0]), 3)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/searched_vs_handmade_fmnist')
    parser.add_argument('--teacher-checkpoint', default=None,
                        help='default: train the teacher in WORK_DIR/teacher')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    parser.add_argument('--jobs', type=int, default=2, help='runs at once (1 thread each)')
    parser.add_argument('--n-trials', type=int, default=16, help='search trials')
    parser.add_argument('--docs', default='docs', help='where the table and card go')
    parser.add_argument('--proxy', action='store_true',
                        help="score the rows on the search's proxy and validation split "
                        'instead of the full schedule and the test split')
    args = parser.parse_args(argv)
    work = osp.abspath(args.work_dir)
    ckpt = args.teacher_checkpoint
    teacher_top1 = None
    if ckpt is None:
        teacher_top1 = train_run(osp.join(work, 'teacher'), TEACHER, {'randomness.seed': 0},
                                 threads=2)['value']
        ckpt = osp.join(work, 'teacher', 'epoch_3.pth')
    ckpt = osp.abspath(ckpt)
    result = osp.join(osp.dirname(ckpt), 'result.json')
    if teacher_top1 is None and osp.isfile(result):  # a teacher trained by this script
        with open(result) as f:
            teacher_top1 = json.load(f)['value']
    if teacher_top1 is None:  # one trained elsewhere: its test top-1, for the card only
        teacher_top1 = evaluate_checkpoint(osp.join(work, 'teacher_test'), TEACHER, ckpt)

    methods = dict(METHODS)
    if 'searched' in args.methods:
        search_dir = osp.join(work, 'search')
        best = osp.join(search_dir, 'best_full_config.py')
        # always: a finished search only reports again, a stopped one continues (its
        # best_full_config.py is rewritten after every trial, so it says nothing)
        subprocess.run([sys.executable, 'tools/search.py', SEARCH, '--work-dir', search_dir,
                        '--cfg-options', f'model.teacher_checkpoint={ckpt}',
                        f'search.n_trials={args.n_trials}'], cwd=ROOT, check=True)
        methods['searched'] = (osp.relpath(best, ROOT), METHODS['searched'][1])

    choice = searched_choice(methods['searched'][0]) if 'searched' in args.methods else None
    runs = osp.join(work, 'proxy') if args.proxy else work
    if args.proxy:
        methods = {name: (proxy_config(methods[name][0], osp.join(runs, name)),
                          methods[name][1]) for name in args.methods}
        if 'searched' in methods:
            methods['searched'] = (methods['searched'][0],
                                   'MCTS best of the search, trained on the proxy')

    def run(method_seed):
        method, seed = method_seed
        options = run_options(seed)
        if args.proxy:  # the proxy's own schedule: validate after its last epoch
            options.pop('train_cfg.val_interval')
        if method != 'vanilla':
            options['model.teacher_checkpoint'] = ckpt
        return train_run(osp.join(runs, method, f'seed{seed}'), methods[method][0], options)

    todo = [(m, s) for m in args.methods for s in args.seeds]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = dict(zip(todo, pool.map(run, todo)))
    rows = method_rows(results, methods, args.methods, args.seeds)
    protocol = dict(
        what='Searched vs hand-made distillers under full training on Fashion-MNIST '
             '(tools/analysis/searched_vs_handmade_fmnist.py)',
        data=dict(dataset='Fashion-MNIST (real, IDX files)',
                  train='the first 10000 training images, random crop (pad 2) + flip',
                  test='the 10000 test images, once per run, after the last epoch '
                       '(no selection)'),
        teacher=dict(config=TEACHER, checkpoint=osp.relpath(ckpt, ROOT),
                     arch='resnet20, all 60000 training images, 3 epochs',
                     test_top1=teacher_top1),
        student=dict(arch='resnet8 width 0.5', epochs=EPOCHS, batch=128,
                     optimizer='SGD 0.1 m 0.9 nesterov wd 5e-4, cosine to 0'),
        search=dict(config=SEARCH, n_trials=args.n_trials, selected_on='validation split carved from the training '
                    'set (search.validation: 10 %, stratified, seed 0)',
                    proxy='2 epochs on 10000 training images outside the validation split',
                    choice=choice),
        seeds=args.seeds, reported='mean +- std over seeds of test top-1, last epoch',
        device=f'CPU ({platform.processor() or platform.machine()}, '
               f'{os.cpu_count()} cores), 1 process per run, 1 thread',
        codebase='kdzoo (each hand-made row with its paper\'s CIFAR-100 defaults)',
        run_seconds=round(sum(sum(r['seconds']) for r in rows), 1))
    stem, label = 'searched_vs_handmade_fmnist', 'test top-1 (%)'
    if args.proxy:
        stem, label = stem + '_proxy', 'proxy: validation top-1 (%)'
        protocol.update(
            what='The rows of the searched-vs-hand-made table scored on the search\'s proxy '
                 '(tools/analysis/searched_vs_handmade_fmnist.py --proxy)',
            data=dict(dataset='Fashion-MNIST (real, IDX files)',
                      train='10000 training images outside the validation split (the '
                            'search\'s proxy), random crop (pad 2) + flip',
                      val='the validation split (search.validation of the search config: '
                          '10 % of the training set, stratified, seed 0); no test images'),
            reported='mean +- std over seeds of validation top-1 after the proxy\'s last '
                     'epoch')
        protocol['student'].update(epochs='2 (the proxy)')
        # over the hand-made rows: the searched row is whatever its search picked, which
        # need not be the distiller of the full table's searched row
        protocol['agreement'] = rank_agreement(
            [r for r in rows if r['method'] != 'searched'],
            table_means(osp.join(args.docs, 'searched_vs_handmade_fmnist_table.md')))
        print(f"[proxy] rank agreement: {protocol['agreement']}")
    print(write_evidence(rows, protocol, runs, args.docs, stem, label,
                         'tools/analysis/searched_vs_handmade_fmnist.py'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
