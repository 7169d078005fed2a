"""Search a distiller (and the student's shape): ``kdzoo-search CONFIG``,
``python -m kdzoo.cli.search CONFIG`` or, in a source checkout, ``python tools/search.py
CONFIG``.

The config is a distiller config with a ``search`` dict (see docs/search.md). Each trial
writes ``WORK_DIR/trials/<N>/config.py`` and trains it with ``kdzoo.cli.train`` in a child
process; Optuna's storage (default ``WORK_DIR/search.journal``) holds the study, so any
number of workers may run this command on one storage, and ``--resume`` continues a study
whose workers were killed.
"""
import argparse
import os.path as osp
import signal
import sys
import warnings

import optuna
from mmengine.config import Config

from kdzoo.cli.common import add_cfg_options
from kdzoo.models import set_config_dir
from kdzoo.utils.config_options import resolve_term_names
from kdzoo.search import (load_search, prepare_search, run_search,
                          write_search_report)
from kdzoo.search.display import ProgressDisplay
from kdzoo.search.entry import SearchError


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
    add_cfg_options(parser, 'search.n_trials=8 model.teacher_checkpoint=teacher.pth')
    return parser.parse_args(argv)


def _raise_exit(signum, frame):  # SIGTERM (e.g. Slurm preemption) -> clean interrupt
    raise SystemExit(128 + signum)


def summary(search) -> str:
    """What is searched: the base distiller's teacher and checkpoint, the space."""
    model = search.runner.cfg.model
    teacher = model.get('teacher')
    source = teacher if isinstance(teacher, str) else (teacher or {}).get('type', 'a dict')
    ckpt = model.get('teacher_checkpoint')
    state = ('none (random init)' if not ckpt else
             f'{ckpt}' + ('' if osp.isfile(str(ckpt)) else ' (NOT FOUND)'))
    return (f'[search] teacher {source}, checkpoint {state}; '
            f'{len(search.space)} valid distillers over {len(search.space.decisions)} '
            f'decisions: {", ".join(search.space.names)}')


def main(argv=None):
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings('ignore', category=optuna.exceptions.ExperimentalWarning)

    cfg = set_config_dir(Config.fromfile(args.config))  # trial configs keep its directory
    options = resolve_term_names(cfg, args.cfg_options)  # distill terms by name too
    if options:
        cfg.merge_from_dict(options)
    if args.n_trials is not None and args.n_trials < 1:
        raise SystemExit(f'--n-trials {args.n_trials}: give a number of trials >= 1')
    if args.show_space:
        print(load_search(cfg)[1].describe())
        return 0

    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = args.work_dir or cfg.get('work_dir') or osp.join('work_dirs', 'search', name)
    study_name = args.study_name or name
    search = prepare_search(cfg, work_dir, study_name=study_name, n_trials=args.n_trials,
                            storage=args.storage, cmdline_options=options,
                            config_path=args.config)
    metric = search.objective.metric
    if not args.report_only:
        print(f'[search] study {study_name!r} in {work_dir}: {search.settings["n_trials"]} '
              f'trials, searcher {type(search.searcher).__name__}', flush=True)
        print(summary(search), flush=True)
        signal.signal(signal.SIGTERM, _raise_exit)
        try:
            with ProgressDisplay() as display:
                run_search(search, resume=args.resume, log=display.log,
                           on_progress=display.update)
        except KeyboardInterrupt:
            print(f'[search] interrupted; the running trial is marked for a retry. Continue '
                  f'with: kdzoo-search {args.config} --resume'
                  + (f' --work-dir {work_dir}' if args.work_dir else ''), flush=True)
            return 130
        except SearchError as err:
            print(f'[search] {err}', flush=True)
            return 1
        except OSError as err:
            print(f'[search] stopped: {err}. Completed trials are kept in the storage; fix '
                  f'the cause and continue with --resume', flush=True)
            return 1
        running = search.book.trials(states=(optuna.trial.TrialState.RUNNING,))
        if running and not args.resume:
            print(f'[search] {len(running)} trial(s) still RUNNING (other workers, or dead '
                  f'ones: --resume retries those)', flush=True)
    try:
        best = write_search_report(search, test=True)
    except OSError as err:
        print(f'[search] the report could not be written to {work_dir}: {err}', flush=True)
        return 1
    print(f'[search] results: {osp.join(work_dir, "results.md")}', flush=True)
    if best is None and args.report_only:
        return 0
    if best is None:
        print('[search] no trial completed: see the FAIL lines above and each trial\'s '
              'train.log', flush=True)
        return 1
    print(f'[search] best: trial {best.number} {metric}={best.values[0]:.4f}; '
          f'{osp.join(work_dir, "best_config.py")}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
