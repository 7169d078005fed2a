"""Search a distiller (and the student's shape): ``python tools/search.py CONFIG``.

The config is a distiller config with a ``search`` dict (see docs/search.md). Each trial
writes ``WORK_DIR/trials/<N>/config.py`` and trains it with ``tools/train.py`` in a child
process; Optuna's storage (default ``WORK_DIR/search.journal``) holds the study, so any
number of workers may run this command on one storage, and ``--resume`` continues a study
whose workers were killed.
"""
import argparse
import copy
import os
import os.path as osp
import signal
import sys
import warnings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import optuna  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

from kdzoo.search import (SearchLoop, SearchSpace, TrialRunner, apply_proxy,  # noqa: E402
                          build_searcher, open_storage, open_study, recover_orphans,
                          search_settings, write_report)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Search a distiller')
    parser.add_argument('config', help='a distiller config with a "search" dict')
    parser.add_argument('--work-dir', help='default: work_dirs/search/<config name>')
    parser.add_argument('--n-trials', type=int,
                        help='study-wide number of trials (overrides search.n_trials)')
    parser.add_argument('--storage',
                        help='Optuna storage: a .journal file, sqlite:///x.db or '
                        'postgresql://user:pw@host/db (default: WORK_DIR/search.journal)')
    parser.add_argument('--study-name', help='default: the config file name')
    parser.add_argument('--resume', action='store_true',
                        help='continue the study: trials left RUNNING by dead workers are '
                        'marked FAILED and retried')
    parser.add_argument('--report-only', action='store_true',
                        help='write the results and plots from the storage, run no trial')
    parser.add_argument('--show-space', action='store_true',
                        help='print the decisions of the search space and exit')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries (search.* too), e.g. search.n_trials=8 '
        'model.teacher_checkpoint=teacher.pth')
    return parser.parse_args(argv)


def _raise_exit(signum, frame):  # SIGTERM (e.g. Slurm preemption) -> clean interrupt
    raise SystemExit(128 + signum)


def check_work_dir(work_dir: str, study_name: str) -> None:
    """One study per work dir (trial folders are named by trial number)."""
    os.makedirs(work_dir, exist_ok=True)
    marker = osp.join(work_dir, 'study.txt')
    if osp.isfile(marker):
        with open(marker) as f:
            old = f.read().strip()
        if old and old != study_name:
            raise SystemExit(f'{work_dir} holds the search of study {old!r}; use another '
                             f'--work-dir for study {study_name!r}')
        return
    try:
        with open(marker, 'x') as f:
            f.write(study_name + '\n')
    except FileExistsError:  # another worker wrote it a moment ago
        check_work_dir(work_dir, study_name)


def main(argv=None):
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings('ignore', category=optuna.exceptions.ExperimentalWarning)

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    raw = cfg.to_dict()
    settings = search_settings(raw.pop('search', None))
    if args.n_trials is not None:
        settings['n_trials'] = args.n_trials
    space = SearchSpace.from_config(settings['space'])
    if args.show_space:
        print(space.describe())
        return 0

    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = args.work_dir or raw.get('work_dir') or osp.join('work_dirs', 'search', name)
    study_name = args.study_name or name
    check_work_dir(work_dir, study_name)

    full_cfg = Config(copy.deepcopy(raw), filename=cfg.filename)
    proxy_cfg = apply_proxy(Config(copy.deepcopy(raw), filename=cfg.filename),
                            settings['proxy'])
    if args.cfg_options:  # the command line wins over the proxy settings
        proxy_cfg.merge_from_dict({k: v for k, v in args.cfg_options.items()
                                   if not k.startswith('search.')})

    searcher = build_searcher(settings['searcher'], settings['seed'])
    storage = open_storage(args.storage, work_dir)
    study = open_study(storage, study_name, searcher.directions(settings['direction']),
                       searcher.sampler(space), space, settings['enqueue'],
                       attrs=dict(config=osp.abspath(args.config), metric=settings['metric']))
    runner = TrialRunner(
        proxy_cfg, space, work_dir, metric=settings['metric'], full_cfg=full_cfg,
        train_script=osp.join(ROOT, 'tools', 'train.py'), env=settings['trial_env'],
        timeout=settings['trial_timeout'], heartbeat_interval=settings['heartbeat_interval'],
        keep_checkpoints=settings['keep_checkpoints'], gpus=settings['trial_gpus'],
        header=f'kdzoo search, study {study_name!r}, searcher '
        f'{type(searcher).__name__}\n')

    def report(study_):
        write_report(study_, space, searcher, work_dir, settings['metric'], runner)

    if not args.report_only:
        print(f'[search] study {study_name!r} in {work_dir}: {len(space)} valid distillers, '
              f'{settings["n_trials"]} trials, searcher {type(searcher).__name__}', flush=True)
        if args.resume:
            recovered = recover_orphans(study, settings['stale_after'])
            if recovered:
                print(f'[search] resume: trials {recovered} had no live worker; marked '
                      f'FAILED and re-enqueued', flush=True)
        signal.signal(signal.SIGTERM, _raise_exit)
        loop = SearchLoop(study, space, searcher, runner, settings['n_trials'],
                          metric=settings['metric'], max_rejects=settings['max_rejects'],
                          on_trial_end=report, stale_after=settings['stale_after'],
                          log=lambda msg: print(msg, flush=True))
        searcher.search(loop)
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if running and not args.resume:
            print(f'[search] {len(running)} trial(s) still RUNNING (other workers, or dead '
                  f'ones: --resume retries those)', flush=True)
    best = write_report(study, space, searcher, work_dir, settings['metric'], runner)
    if best is not None:
        print(f'[search] best: trial {best.number} {settings["metric"]}={best.values[0]:.4f}; '
              f'{osp.join(work_dir, "best_config.py")}', flush=True)
    print(f'[search] results: {osp.join(work_dir, "results.md")}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
