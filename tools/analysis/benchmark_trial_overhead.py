"""The fixed overhead of a search trial, cold (``search.trial_launcher='spawn'``) and warm
(``'fork'``), in one command:

    python tools/analysis/benchmark_trial_overhead.py [--trials 4] [--train-images 2000]
        [--epochs 2] [--threads 1] [--launchers spawn fork] [--teacher-checkpoint PATH]
        [--out docs/trial_overhead_benchmark.json]

Runs the same small random search on Fashion-MNIST (``configs/search/random_kd_fmnist.py``
with a proxy of ``--train-images`` images and ``--epochs`` epochs; the validation split of
``search.validation``) once per launcher, and reports per trial:

- wall: the trial as the search loop times it (writing its config, counting the student's
  parameters, launching the process, training, reading the metric; the loop's
  ``duration_s``);
- train + val: from the start of the first training iteration (``before_train_iter``, so
  after the first batch is loaded) to the end of the last validation (``after_val_epoch``,
  after the best checkpoint is saved), stamped by :class:`TrialClockHook`, which this script
  adds to every trial config (``WORK_DIR/trials/<N>/trial_clock.json``);
- fixed overhead = wall - (train + val), and its share of the wall time; split into
  *launch* (the trial's start to its process's start: config, parameter count, spawn or
  fork), *setup* (process start to the first iteration: interpreter, imports, config,
  data, models, data workers, first batch) and *after* (the last validation to the result:
  the last checkpoint, the process's exit, reading the metric).

The fork server's start (once per search worker) is timed apart and is not in any trial.
Writes a markdown table and a JSON file with a protocol card (machine, CPUs, trials, proxy).
The same searcher seed gives both searches the same trials; their metrics must agree.
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))
if ROOT not in sys.path:  # a source checkout without ``pip install -e .``
    sys.path.insert(0, ROOT)

from mmengine.hooks import Hook  # noqa: E402

from kdzoo.registry import HOOKS  # noqa: E402

CLOCK_FILE = 'trial_clock.json'


def process_start_time() -> float:
    """When this process started (epoch seconds; Linux ``/proc``, 10 ms resolution)."""
    try:
        with open('/proc/self/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        started = int(fields[19]) / os.sysconf('SC_CLK_TCK')  # field 22: after boot
        return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, AttributeError):
        return float('nan')


@HOOKS.register_module()
class TrialClockHook(Hook):
    """Stamps (epoch seconds) of a training run in ``WORK_DIR/trial_clock.json``:
    ``process_start``, ``built`` (the hook is built with the runner), ``before_run``,
    ``first_iter`` (the first ``before_train_iter``), ``last_val_end`` (the latest
    ``after_val_epoch``) and ``after_run``. It runs after the other hooks of each event."""

    priority = 'LOWEST'

    def __init__(self):
        self.stamps = dict(process_start=process_start_time(), built=time.time())

    def _write(self, runner) -> None:
        with open(osp.join(runner.work_dir, CLOCK_FILE), 'w') as f:
            json.dump(self.stamps, f)

    def before_run(self, runner) -> None:
        self.stamps['before_run'] = time.time()

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.stamps.setdefault('first_iter', time.time())

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.stamps['last_val_end'] = time.time()
        self._write(runner)

    def after_run(self, runner) -> None:
        self.stamps['after_run'] = time.time()
        self._write(runner)


class TimedEvaluator:
    """The trial runner, with each trial's start and end (epoch seconds) kept."""

    def __init__(self, runner):
        self.runner = runner
        self.times = {}

    def __call__(self, job, monitor=None):
        start = time.time()
        try:
            return self.runner(job, monitor)
        finally:
            self.times[job.work] = (start, time.time())

    def __getattr__(self, name):
        return getattr(self.runner, name)


def validation_of(config: str) -> str:
    """What the trials are scored on: the config's ``search.validation``."""
    from mmengine.config import Config

    from kdzoo.search import search_settings
    validation = search_settings(Config.fromfile(config).get('search'))['validation']
    return (f'search.validation {dict(validation)}: held out of the training data'
            if validation else 'the config\'s val loader')


def run_search(launcher: str, args, work_dir: str) -> dict:
    """One search with ``launcher``; its trials' times and metrics."""
    from mmengine.config import Config

    from kdzoo.models import set_config_dir
    from kdzoo.search import prepare_search
    from kdzoo.search import run_search as run_loop
    from kdzoo.search.settings import add_custom_hook

    cfg = set_config_dir(Config.fromfile(args.config))
    options = {'search.n_trials': args.trials, 'search.preflight': False,
               'search.proxy.train_indices': args.train_images,
               'search.proxy.max_epochs': args.epochs, 'search.trial_launcher': launcher,
               'model.teacher_checkpoint': args.teacher_checkpoint,
               'custom_imports': dict(imports=['benchmark_trial_overhead'],
                                      allow_failed_imports=False)}
    if args.threads:
        options['search.trial_env'] = dict(OMP_NUM_THREADS=str(args.threads),
                                           MKL_NUM_THREADS=str(args.threads))
    cfg.merge_from_dict(options)
    search = prepare_search(cfg, work_dir, study_name=f'overhead_{launcher}',
                            storage=osp.join(work_dir, 'search.journal'))
    runner = search.runner
    runner.launcher = launcher  # whatever prepare_search passes on
    runner.env['PYTHONPATH'] = os.pathsep.join(filter(None, [HERE, ROOT,
                                                              os.environ.get('PYTHONPATH')]))
    add_custom_hook(runner.cfg, dict(type='TrialClockHook'))
    timed = TimedEvaluator(runner)
    search.evaluate = timed
    server_s = None
    if launcher == 'fork':
        start = time.time()
        server = runner.warm_up()
        server_s = round(time.time() - start, 3) if server is not None else None
    start = time.time()
    lines = []
    try:
        run_loop(search, report=False, log=lambda msg: (lines.append(msg), print(msg)))
    finally:
        runner.close()
    total = time.time() - start
    trials = []
    for trial in search.study.trials:
        if trial.number not in timed.times:
            continue
        begin, end = timed.times[trial.number]
        clock_file = osp.join(runner.trial_dir(trial.number), CLOCK_FILE)
        row = dict(trial=trial.number, state=trial.state.name, value=trial.value,
                   wall_s=round(end - begin, 3))
        if osp.isfile(clock_file):
            with open(clock_file) as f:
                stamps = json.load(f)
            train_val = stamps['last_val_end'] - stamps['first_iter']
            row.update(train_val_s=round(train_val, 3),
                       overhead_s=round(end - begin - train_val, 3),
                       overhead_pct=round(100 * (end - begin - train_val) / (end - begin), 1),
                       launch_s=round(stamps['process_start'] - begin, 3),
                       setup_s=round(stamps['first_iter'] - stamps['process_start'], 3),
                       after_s=round(end - stamps['last_val_end'], 3))
        trials.append(row)
    return dict(launcher=launcher, fork_server_start_s=server_s, search_s=round(total, 3),
                fork_fallback=runner.fork_error, trials=trials)


def summary(result: dict) -> dict:
    rows = [r for r in result['trials'] if 'overhead_s' in r]
    out = {}
    for key in ('wall_s', 'train_val_s', 'overhead_s', 'overhead_pct', 'launch_s', 'setup_s',
                'after_s'):
        values = [r[key] for r in rows]
        out[key] = round(statistics.mean(values), 3) if values else None
    return out


def markdown(results: list, card: dict) -> str:
    lines = ['| launcher | trial | wall (s) | train + val (s) | overhead (s) | overhead % | '
             'launch / setup / after (s) | top-1 |',
             '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for res in results:
        for r in res['trials']:
            if 'overhead_s' not in r:
                lines.append(f'| {res["launcher"]} | {r["trial"]} | {r["wall_s"]:.2f} | - | - '
                             f'| - | - | {r["state"]} |')
                continue
            lines.append(f'| {res["launcher"]} | {r["trial"]} | {r["wall_s"]:.2f} | '
                         f'{r["train_val_s"]:.2f} | {r["overhead_s"]:.2f} | '
                         f'{r["overhead_pct"]:.1f} | {r["launch_s"]:.2f} / {r["setup_s"]:.2f} '
                         f'/ {r["after_s"]:.2f} | {r["value"]} |')
        s = res['summary']
        if s['wall_s'] is not None:
            lines.append(f'| **{res["launcher"]}** | mean | {s["wall_s"]:.2f} | '
                         f'{s["train_val_s"]:.2f} | {s["overhead_s"]:.2f} | '
                         f'{s["overhead_pct"]:.1f} | {s["launch_s"]:.2f} / {s["setup_s"]:.2f} '
                         f'/ {s["after_s"]:.2f} | |')
    lines.append('')
    for res in results:
        extra = (f'; fork server start {res["fork_server_start_s"]:.2f} s (once per worker, '
                 f'in no trial)' if res['fork_server_start_s'] is not None else '')
        if res['fork_fallback']:
            extra += f'; FELL BACK TO SPAWN: {res["fork_fallback"]}'
        lines.append(f'- {res["launcher"]}: whole search {res["search_s"]:.1f} s{extra}')
    by = {res['launcher']: res for res in results}
    if 'spawn' in by and 'fork' in by and by['fork']['summary']['overhead_s']:
        cold, warm = by['spawn']['summary'], by['fork']['summary']
        lines.append(f'- fork / spawn: overhead {warm["overhead_s"] / cold["overhead_s"]:.2f}x, '
                     f'trial wall {warm["wall_s"] / cold["wall_s"]:.2f}x, train + val '
                     f'{warm["train_val_s"] / cold["train_val_s"]:.2f}x')
        same = [a['value'] == b['value'] for a, b in zip(by['spawn']['trials'],
                                                          by['fork']['trials'])]
        lines.append(f'- the same metric cold and warm: {sum(same)} of {len(same)} trials')
    lines.append(f'- protocol: {json.dumps(card)}')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default='configs/search/random_kd_fmnist.py')
    parser.add_argument('--trials', type=int, default=4)
    parser.add_argument('--train-images', type=int, default=2000)
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--threads', type=int, default=1,
                        help='OMP/MKL threads of each trial (0: the default)')
    parser.add_argument('--launchers', nargs='+', default=['spawn', 'fork'],
                        choices=['spawn', 'fork'])
    parser.add_argument('--teacher-checkpoint', default=None,
                        help='default: a random-init teacher (the time does not depend on '
                        'its weights)')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_trial_overhead')
    parser.add_argument('--out', help='write the results as JSON (and .md next to it)')
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    for path in (HERE, ROOT):
        if path not in sys.path:
            sys.path.insert(0, path)
    import optuna
    import torch
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stamp = time.strftime('%Y%m%d-%H%M%S')
    results = []
    for launcher in args.launchers:
        work = osp.join(args.work_dir, f'{stamp}_{launcher}')
        res = run_search(launcher, args, work)
        res['summary'] = summary(res)
        results.append(res)
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    card = dict(date=time.strftime('%Y-%m-%d %H:%M'), machine=platform.platform(),
                processor=platform.processor() or platform.machine(),
                cpu_count=os.cpu_count(), python=platform.python_version(),
                torch=torch.__version__, config=args.config, trials=args.trials,
                proxy=dict(train_images=args.train_images, epochs=args.epochs,
                           validation=validation_of(args.config)),
                trial_threads=args.threads or 'default',
                teacher='checkpoint ' + args.teacher_checkpoint if args.teacher_checkpoint
                else 'random init', load_avg_after=load)
    text = markdown(results, card)
    print(text)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(card=card, results=results), f, indent=1)
        with open(osp.splitext(args.out)[0] + '.md', 'w') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
