"""Search a distiller (and the student's shape): ``python tools/search.py CONFIG``.

The config is a distiller config with a ``search`` dict (see docs/search.md). Each trial
writes ``WORK_DIR/trials/<N>/config.py`` and trains it with ``tools/train.py`` in a child
process; Optuna's storage (default ``WORK_DIR/search.journal``) holds the study, so any
number of workers may run this command on one storage, and ``--resume`` continues a study
whose workers were killed.
"""
import argparse
import os.path as osp
import signal
import sys
import warnings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import optuna  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

from kdzoo.search import (load_search, prepare_search, run_search,  # noqa: E402
                          write_search_report)


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


def main(argv=None):
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings('ignore', category=optuna.exceptions.ExperimentalWarning)

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.show_space:
        print(load_search(cfg)[1].describe())
        return 0

    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = args.work_dir or cfg.get('work_dir') or osp.join('work_dirs', 'search', name)
    study_name = args.study_name or name
    search = prepare_search(cfg, work_dir, study_name=study_name, n_trials=args.n_trials,
                            storage=args.storage, cmdline_options=args.cfg_options,
                            train_script=osp.join(ROOT, 'tools', 'train.py'),
                            config_path=args.config)
    metric = search.objective.metric
    if not args.report_only:
        print(f'[search] study {study_name!r} in {work_dir}: {len(search.space)} valid '
              f'distillers, {search.settings["n_trials"]} trials, searcher '
              f'{type(search.searcher).__name__}', flush=True)
        signal.signal(signal.SIGTERM, _raise_exit)
        run_search(search, resume=args.resume, log=lambda msg: print(msg, flush=True))
        running = search.book.trials(states=(optuna.trial.TrialState.RUNNING,))
        if running and not args.resume:
            print(f'[search] {len(running)} trial(s) still RUNNING (other workers, or dead '
                  f'ones: --resume retries those)', flush=True)
    best = write_search_report(search)
    if best is not None:
        print(f'[search] best: trial {best.number} {metric}={best.values[0]:.4f}; '
              f'{osp.join(work_dir, "best_config.py")}', flush=True)
    print(f'[search] results: {osp.join(work_dir, "results.md")}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
