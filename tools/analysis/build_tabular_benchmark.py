"""Train every distiller of a search space once and write the table of the tabular search
benchmark (docs/search_benchmark.md).

    python tools/analysis/build_tabular_benchmark.py [--benchmark v1|v2] [CONFIG]
        [--seed 0] [--out CSV] [--teacher-checkpoint CKPT] [--teacher-epochs 1]
        [--work-dir DIR] [--shard I/N]

A shipped table is three such files, one per ``--seed`` (0, 1, 2; the default ``--out`` is
``kdzoo/benchmarks/data/<prefix>_seed<SEED>.csv`` of ``--benchmark``, whose space config is
the default CONFIG), all with the same teacher (``--teacher-checkpoint``);
:func:`kdzoo.benchmarks.tabular.load_table` averages them.

0. When the space's proxy reads the teacher from an offline store
   (``search.proxy.teacher_store``), the store is built first (or resumed) from the search
   config with the teacher checkpoint (``--store-replays`` views per sample): the teacher
   never runs in the rows.

1. The teacher (the base config's ``model.teacher``) is trained once on its own config
   (``--teacher-epochs``), unless ``--teacher-checkpoint`` gives one; either way its top-1 on
   the whole test set is measured and written into the table's header.
2. Every valid distiller of ``search.space`` (enumerated by :class:`SearchSpace`, so the
   table's keys are exactly the searchers' parameter labels) becomes the trial config that
   ``tools/search.py`` would write (the base distiller config + the chosen term + the
   ``search.proxy`` settings), and is trained in this process by an MMEngine ``Runner``
   built from that config (kdzoo's ``Distiller``, the real data pipeline; no checkpoints).
3. One CSV row per distiller: the parameter labels, ``metric`` (the last validation's
   ``search.metric``), ``train_s``, ``final_loss``, ``state`` (``ok`` / ``nan`` /
   ``failed``) and ``error``. Rows are appended as they finish; a re-run skips the rows that
   are already in the file (resumable).

Every distiller starts from the same seed (``randomness.seed``), so all rows share the
student's initialisation and the data order: the rows differ only by the distiller.
"""
import argparse
import copy
import itertools
import math
import os
import os.path as osp
import platform
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from kdzoo.benchmarks.tabular import (BENCHMARKS, DEFAULT_BENCHMARK,  # noqa: E402
                                      append_rows, read_table_file, row_key, seed_table,
                                      write_header)
from kdzoo.models import set_config_dir  # noqa: E402
from kdzoo.search import SearchSpace, TrialRunner, apply_proxy, search_settings  # noqa: E402
from kdzoo.search.settings import apply_validation  # noqa: E402
from kdzoo.teaching import apply_teaching  # noqa: E402
from kdzoo.utils import register_all_modules  # noqa: E402


class _Diverged(RuntimeError):
    pass


class CaptureHook(Hook):
    """Keeps the last training loss and the last validation metrics; stops a run whose loss
    turns non-finite."""

    priority = 'LOWEST'

    def __init__(self):
        self.last_loss = None
        self.metrics = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not outputs:
            return
        def scalar(v):
            return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)

        if 'loss' in outputs:
            loss = scalar(outputs['loss'])
        else:
            loss = sum(scalar(v) for k, v in outputs.items() if k.startswith('loss'))
        self.last_loss = loss
        if not math.isfinite(loss):
            raise _Diverged(f'non-finite training loss {loss} at iteration {runner.iter}')

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = dict(metrics or {})


def lean_runtime(cfg: Config, work_dir: str, name: str, keep_checkpoint: bool = False):
    """Quiet, checkpoint-free runtime settings for an in-process training."""
    cfg.work_dir = work_dir
    cfg.experiment_name = name  # distinct MMEngine logger / visualizer instances per run
    cfg.log_level = 'WARNING'
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10**6)
    if not keep_checkpoint:
        cfg.default_hooks.checkpoint = None
        cfg.custom_hooks = []
    cfg.visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key) is not None:
            cfg[key].num_workers = 0
            cfg[key].persistent_workers = False
    cfg.launcher = 'none'
    return cfg


def run_training(cfg: Config, metric: str):
    """Train ``cfg`` in this process; returns (metric, seconds, final loss, state, error)."""
    hook = CaptureHook()
    start = time.time()
    try:
        # as tools/train.py does: the teaching mode wraps the train data and, with a
        # store, feeds the distiller from it (no teacher runs)
        apply_teaching(cfg)
        runner = Runner.from_cfg(cfg)
        runner.register_hook(hook, 'LOWEST')
        runner.train()
    except _Diverged as err:
        return math.nan, time.time() - start, hook.last_loss, 'nan', str(err)
    except Exception as err:  # a distiller that cannot train is a row too
        return math.nan, time.time() - start, hook.last_loss, 'failed', \
            f'{type(err).__name__}: {err}'.replace('\n', ' ')[:300]
    seconds = time.time() - start
    value = hook.metrics.get(metric)
    if value is None or not math.isfinite(float(value)):
        return math.nan, seconds, hook.last_loss, 'failed', f'no finite {metric} ' \
            f'(metrics: {sorted(hook.metrics)})'
    return float(value), seconds, hook.last_loss, 'ok', ''


def train_teacher(cfg_path: str, work_dir: str, epochs: int, indices, metric: str):
    cfg = set_config_dir(Config.fromfile(cfg_path))
    proxy = dict(max_epochs=epochs)
    if indices:
        proxy['train_indices'] = indices
    apply_proxy(cfg, proxy)
    lean_runtime(cfg, work_dir, 'tabular_teacher', keep_checkpoint=True)
    cfg.custom_hooks = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=epochs,
                                        max_keep_ckpts=1)
    value, seconds, loss, state, error = run_training(cfg, metric)
    if state != 'ok':
        raise SystemExit(f'teacher training failed: {error}')
    return osp.join(work_dir, f'epoch_{epochs}.pth'), value, seconds


def evaluate_teacher(cfg_path: str, checkpoint: str, work_dir: str, metric: str) -> float:
    cfg = set_config_dir(Config.fromfile(cfg_path))
    lean_runtime(cfg, work_dir, 'tabular_teacher_eval')
    cfg.load_from = checkpoint
    runner = Runner.from_cfg(cfg)
    return float(runner.test()[metric])


def ensure_store(search_cfg: Config, checkpoint: str, store: str, replays: int) -> None:
    """Build (or resume) the offline teacher store the proxy reads, from the search config
    (its trials' data, its space's teacher outputs) with ``checkpoint``; a complete store
    is left as it is. Build it once (``--limit 0``) before starting ``--shard`` processes."""
    from kdzoo.teaching import TeacherStore
    from kdzoo.teaching.build import build_store
    cfg = copy.deepcopy(search_cfg)
    cfg.model.teacher_checkpoint = checkpoint
    start = time.time()
    build_store(cfg, store, replays=replays, progress=False)
    views = TeacherStore.open(store).views  # 1 for fix/* modes, whatever --store-replays
    print(f'[table] teacher store {store} ({views} view(s) per sample) ready in '
          f'{time.time() - start:.0f} s', flush=True)


def valid_params(space: SearchSpace):
    """All valid assignments of the space, in decision order."""
    out = []
    for path in itertools.product(*[range(len(d.labels)) for d in space.decisions]):
        params = space.labels_of(path)
        if space.check(params) is None:
            out.append(params)
    return out


def _repo_path(path: str) -> str:
    """``path`` (relative to the cwd) relative to the repository when inside it."""
    path = osp.abspath(path)
    return osp.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return 'nan' if isinstance(value, float) else ''
    return f'{value:.4f}' if isinstance(value, float) else str(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', default=None,
                        help="default: the space config of --benchmark")
    parser.add_argument('--benchmark', default=DEFAULT_BENCHMARK,
                        choices=sorted(BENCHMARKS),
                        help='which shipped table (default config, --out, --work-dir)')
    parser.add_argument('--out', default=None,
                        help='default: kdzoo/benchmarks/data/<prefix>_seed<SEED>.csv')
    parser.add_argument('--work-dir', default=None,
                        help='default: the work_dir of --benchmark (BENCHMARKS)')
    parser.add_argument('--store-replays', type=int, default=4,
                        help='views per sample of the offline teacher store, when the '
                        'proxy reads one (search.proxy.teacher_store)')
    parser.add_argument('--teacher-checkpoint', help='skip the teacher training')
    parser.add_argument('--teacher-epochs', type=int, default=1)
    parser.add_argument('--teacher-train-indices', type=int, default=None,
                        help='train the teacher on a subset (default: all 60k images)')
    parser.add_argument('--limit', type=int, default=None,
                        help='train at most this many new rows (smoke tests)')
    parser.add_argument('--every', type=int, default=1,
                        help='train only every K-th valid distiller (noise estimates)')
    parser.add_argument('--shard', default=None, metavar='I/N',
                        help='train only every N-th distiller from the I-th (0-based): N '
                        'processes with I = 0..N-1 share one table file')
    parser.add_argument('--seed', type=int, default=None,
                        help='randomness.seed of the distiller runs (default: the config\'s)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    args = parser.parse_args(argv)
    if args.config is None:
        args.config = BENCHMARKS[args.benchmark]['space']
    if args.out is None:
        args.out = seed_table(args.seed or 0, args.benchmark)
    if args.work_dir is None:
        args.work_dir = BENCHMARKS[args.benchmark]['work_dir']
    for key in ('config', 'out', 'work_dir', 'teacher_checkpoint'):  # relative to the cwd
        if getattr(args, key):
            setattr(args, key, _repo_path(getattr(args, key)))
    os.chdir(ROOT)  # configs name the teacher config by a path relative to the repo
    if args.threads:
        torch.set_num_threads(args.threads)
    register_all_modules()

    cfg = set_config_dir(Config.fromfile(args.config))
    search = search_settings(cfg.get('search'))
    space = SearchSpace.from_config(search['space'])
    metric = search['metric']
    base = copy.deepcopy(cfg)
    base.pop('search', None)
    base, proxy = apply_validation(base, search['validation'], search['proxy'])
    apply_proxy(base, proxy)
    if args.seed is not None:
        base.randomness = dict(base.get('randomness') or {}, seed=args.seed)
    maker = TrialRunner(base, space, args.work_dir, count_params=False)
    every = valid_params(space)
    combos = every[::args.every]
    if args.shard:
        try:
            index, count = (int(x) for x in args.shard.split('/'))
            assert 0 <= index < count
        except (ValueError, AssertionError):
            raise SystemExit(f'--shard {args.shard!r}: expected I/N with 0 <= I < N')
        combos = combos[index::count]

    header, rows = ([], [])
    if osp.exists(args.out):
        header, rows = read_table_file(args.out)
        if rows and list(rows[0].keys())[:len(space.names)] != space.names:
            raise SystemExit(f'{args.out} holds another space ({list(rows[0])}); '
                             f'use another --out')
    done = {row_key(r, space.names) for r in rows}
    todo = [p for p in combos if row_key(p, space.names) not in done]
    print(f'[table] {len(combos)} valid distillers; {len(done)} rows in {args.out}; '
          f'{len(todo)} to train', flush=True)

    if not header:
        teacher_cfg = base.model.teacher
        work_t = osp.join(args.work_dir, 'teacher')
        ckpt = args.teacher_checkpoint
        t_train_s = 0.0
        if ckpt is None:
            print(f'[table] training the teacher ({teacher_cfg}, {args.teacher_epochs} '
                  f'epoch(s))', flush=True)
            # its validation ran on the whole test set: that is the teacher's accuracy
            ckpt, teacher_acc, t_train_s = train_teacher(
                teacher_cfg, work_t, args.teacher_epochs, args.teacher_train_indices, metric)
        else:
            teacher_acc = evaluate_teacher(teacher_cfg, ckpt, osp.join(work_t, 'eval'),
                                           metric)
        print(f'[table] teacher {ckpt}: {metric} {teacher_acc:.2f} on the whole test set '
              f'(trained in {t_train_s:.0f} s)', flush=True)
        trained = ('given by --teacher-checkpoint' if args.teacher_checkpoint else
                   f'trained here, {args.teacher_epochs} epoch(s) on '
                   f'{args.teacher_train_indices or "all 60k"} training images in '
                   f'{t_train_s:.0f} s')
        command = ' '.join(['python', 'tools/analysis/build_tabular_benchmark.py'] +
                           list(argv if argv is not None else sys.argv[1:]))
        header = [
            'kdzoo tabular search benchmark: every distiller of the space trained once',
            f'space: {args.config} (search.space; {len(every)} valid distillers)',
            f'proxy: {dict(search["proxy"])}',
            (f'validation: {dict(search["validation"])} (held out of the training data; '
             f'the test split is not read)' if search['validation'] else
             'validation: the val loader of the config'),
            f'metric: {metric} (%, last validation of the proxy run); seed '
            f'{base.randomness.get("seed")}',
            f'teacher: {teacher_cfg}; {ckpt}; {trained}; test top-1 {teacher_acc:.2f} '
            f'(10k images)',
            f'student: {maker.student_param_count(base)} parameters',
            f'command: {command}',
            f'machine: {platform.machine()} {platform.processor() or ""} '
            f'{os.cpu_count()} logical CPUs; torch {torch.__version__}, '
            f'{torch.get_num_threads()} thread(s)'.replace('  ', ' '),
        ]
        base.model.teacher_checkpoint = ckpt
        write_header(args.out, header, space.names)
    else:
        ckpt = next((h.split(';')[1].strip() for h in header if h.startswith('teacher:')),
                    None)
        if args.teacher_checkpoint:
            ckpt = args.teacher_checkpoint
        if not ckpt or not osp.exists(ckpt):
            raise SystemExit(f'the table was started with the teacher {ckpt!r}, which is '
                             f'gone; give --teacher-checkpoint')
        base.model.teacher_checkpoint = ckpt
    store = search['proxy'].get('teacher_store')
    if store:
        ensure_store(cfg, ckpt, store, args.store_replays)
    maker.cfg = base

    if args.limit is not None:
        todo = todo[:args.limit]
    start = time.time()
    position = {row_key(p, space.names): i for i, p in enumerate(every)}
    for n, params in enumerate(todo, 1):
        index = position[row_key(params, space.names)]  # the run dir: one per distiller
        cfg_i = maker.make_config(params)
        lean_runtime(cfg_i, osp.join(args.work_dir, 'runs', f'seed{base.randomness.get("seed")}',
                                     str(index)), f'tabular_{index}')
        value, seconds, loss, state, error = run_training(cfg_i, metric)
        row = dict(params)
        row.update(metric=fmt(value), train_s=f'{seconds:.2f}', final_loss=fmt(loss),
                   state=state, error=error)
        append_rows(args.out, [row], space.names)
        elapsed = time.time() - start
        eta = elapsed / n * (len(todo) - n)
        print(f'[table] {n}/{len(todo)} {state} {metric}={fmt(value)} in {seconds:.1f}s '
              f'(eta {eta / 60:.1f} min) | ' +
              ' '.join(f'{k}={v}' for k, v in params.items()), flush=True)
    print(f'[table] done: {len(todo)} rows in {time.time() - start:.0f} s -> {args.out}',
          flush=True)


if __name__ == '__main__':
    main()
