"""The trial runner: writes a trial's config (``WORK_DIR/trials/<N>/config.py``, an
ordinary MMEngine config) and trains it with ``tools/train.py`` in a child process, then
reads the metric from the run's ``scalars.json``. The child is forked from a warm fork
server that has already imported the stack (``search.trial_launcher='fork'``, the default
on Linux; :mod:`kdzoo.search.forkserver`) or is a new interpreter (``'spawn'``). No
Optuna object enters the training process; a crash, a timeout or a non-finite loss / metric becomes an error result. Every
searcher runs its trials through :class:`TrialRunner` (a rung of successive halving is a
:class:`~kdzoo.search.protocol.Job` with a budget and ``resume``).
"""
import copy
import glob
import json
import math
import os
import os.path as osp
import re
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from mmengine.config import Config

from kdzoo.utils.files import atomic_write, read_json
from .forkserver import ForkServer, check_launcher, dataset_dicts, fork_available, \
    preload_modules
from .protocol import Job, TrialMonitor, TrialResult
from .settings import Objective, budget_config
from .space import SearchSpace
from .watch import TrainingWatch


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGKILL when the search worker dies (even by SIGKILL)."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def read_scalars(work_dir: str) -> List[dict]:
    """Rows of the newest ``WORK_DIR/<timestamp>/vis_data/scalars.json``."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        return []
    with open(files[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def metric_from_scalars(rows: List[dict], metric: str) -> TrialResult:
    """The last validation value of ``metric``; non-finite losses or metric fail."""
    for row in rows:
        for key, value in row.items():
            if key.startswith('loss') and isinstance(value, (int, float)) \
                    and not math.isfinite(value):
                return TrialResult(error=f'non-finite training loss {key}={value} at '
                                   f'step {row.get("step")}')
    val_rows = [r for r in rows if metric in r]
    if not val_rows:
        return TrialResult(error=f'no {metric!r} in scalars.json (did it validate?)')
    last = val_rows[-1]
    value = last[metric]
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return TrialResult(error=f'non-finite metric {metric}={value}')
    metrics = {k: v for k, v in last.items() if isinstance(v, (int, float))
               and math.isfinite(v) and k not in ('step', 'time', 'data_time')}
    attrs = dict(metrics=metrics)
    for key, value in metrics.items():  # Auto-KD's reward terms, if a hook logs them
        short = key.rsplit('/', 1)[-1]
        if short in ('ce', 'cka', 'autokd_reward'):
            attrs[short] = value
    return TrialResult(value=float(last[metric]), attrs=attrs)


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return ''


def _stop(proc) -> None:
    proc.kill()
    proc.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def torch_default_threads() -> int:
    """torch's default intra-op thread count when OMP_NUM_THREADS is unset (a process
    that has not changed it)."""
    import torch
    return torch.get_num_threads()


class TrialRunner:
    """Writes a trial's config and trains it with ``tools/train.py`` in a child process.

    ``runner(job, heartbeat) -> TrialResult`` is the evaluator of the search loop.

    Args:
        cfg: the base config with the proxy settings applied (trial configs are copies).
        space: the search space.
        work_dir: the search's work dir; job ``work`` lives in ``work_dir/trials/<work>``.
        objective: the metric (a scalars.json key) read as the trial's value.
        full_cfg: the base config without proxy settings (for ``best_full_config.py``).
        train_script: a training script; default ``python -m kdzoo.cli.train`` (what
            ``tools/train.py`` runs), which works from an installed package too.
        env: extra environment variables of the child (e.g. ``OMP_NUM_THREADS``).
        timeout: seconds before a trial is killed and FAILS.
        heartbeat_interval: seconds between heartbeats while a trial trains.
        count_params: build the student in this process to record its parameter count
            (needed by ``nsga2``).
        keep_checkpoints: keep the trial's ``*.pth`` files (False: delete them once the
            metric is read, unless the job needs them later).
        gpus: training processes per trial. Above 1, the trial runs through torchrun
            (``--nproc_per_node=gpus``, ``--launcher pytorch``) on a free local port: one
            process per GPU, or gloo processes on a CPU machine.
        header: first lines of every trial config's comment.
        poll_interval: seconds between looks at the training's progress.
        launcher: ``'fork'``: single-process trials are forked from a warm fork server
            (one per runner, started at the first trial, which spawns while the server
            warms up; :mod:`kdzoo.search.forkserver`), falling back to ``'spawn'`` with one log line where fork is unavailable;
            ``'spawn'``: every trial starts a new interpreter. Trials through torchrun
            (``gpus > 1``) always spawn.
        log: where the runner's own lines go (the fork fallback).
    """

    def __init__(self, cfg: Config, space: SearchSpace, work_dir: str,
                 objective: Objective = Objective(), full_cfg: Optional[Config] = None,
                 train_script: Optional[str] = None, python: Optional[str] = None,
                 env: Optional[dict] = None, timeout: Optional[float] = None,
                 heartbeat_interval: float = 60.0, count_params: bool = True,
                 keep_checkpoints: bool = True, header: str = '', gpus: int = 1,
                 poll_interval: float = 1.0, launcher: str = 'fork', log=print):
        if 'distill_terms' not in cfg.get('model', {}):
            raise ValueError('the base config of a search must be a distiller config '
                             '(model.distill_terms); see docs/search.md')
        self.cfg = cfg
        self.full_cfg = full_cfg
        self.space = space
        self.work_dir = work_dir
        self.objective = objective
        self.train_script = train_script
        self.python = python or sys.executable
        self.env = {k: str(v) for k, v in (env or {}).items()}
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self.count_params = count_params
        self.keep_checkpoints = keep_checkpoints
        self.header = header
        self.gpus = int(gpus)
        self.poll_interval = float(poll_interval)
        self.launcher = check_launcher(launcher)
        self.log = log or (lambda msg: None)
        self.fork_server: Optional[ForkServer] = None
        self.fork_error: Optional[str] = None  # why trials spawn although launcher='fork'

    @property
    def max_epochs(self) -> Optional[int]:
        """The proxy schedule's epochs (successive halving's default ``max_budget``)."""
        return (self.cfg.get('train_cfg') or {}).get('max_epochs')

    # --- configs ---
    def trial_dir(self, work: int) -> str:
        return osp.join(self.work_dir, 'trials', str(work))

    def make_config(self, params: Dict[str, Any], base: Optional[Config] = None) -> Config:
        """A copy of the base config with the chosen terms and knobs written in."""
        cfg = copy.deepcopy(self.cfg if base is None else base)
        terms, student, knobs = self.space.materialize(params)
        cfg.model.distill_terms = terms
        if student:
            path = self.space.student_path or (
                'model.student.backbone' if 'student' in cfg.model else 'model.backbone')
            cfg.merge_from_dict({f'{path}.{k}': v for k, v in student.items()})
        if knobs:
            cfg.merge_from_dict(knobs)
        return cfg

    def job_config(self, job: Job) -> Config:
        cfg = self.make_config(job.params)
        if job.budget is not None:
            cfg = budget_config(cfg, job.budget, job.max_budget or job.budget)
        return cfg

    def write_config(self, cfg: Config, path: str, comment: str = '') -> str:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        text = ''.join(f'# {line}\n' for line in comment.splitlines()) + cfg.pretty_text
        atomic_write(path, text)
        return path

    def describe(self, number: int, params: Dict[str, Any]) -> str:
        pairs = ', '.join(f'{k}={v!r}' for k, v in params.items())
        # CPU kernels sum in a thread-count-dependent order: the same config with another
        # OMP_NUM_THREADS gives other numbers, so the re-run line pins the trial's
        threads = {**os.environ, **self.env}.get('OMP_NUM_THREADS')
        prefix = f'OMP_NUM_THREADS={threads} ' if threads else ''
        note = '' if threads else (' (OMP_NUM_THREADS was unset: torch used its default '
                                   f'of {torch_default_threads()} threads on CPU)')
        return (f'{self.header}trial {number}: {pairs}\n'
                f're-run: {prefix}python tools/train.py THIS_FILE --work-dir DIR{note}')

    def student_param_count(self, cfg: Config) -> int:
        """Parameters of the student of ``cfg`` (built here on CPU; the teacher is not)."""
        from kdzoo.registry import MODELS
        from kdzoo.utils import register_all_modules
        register_all_modules()
        model = cfg.model
        student = model.get('student') if 'distill_terms' in model else model
        built = MODELS.build(copy.deepcopy(student))
        return int(sum(p.numel() for p in built.parameters()))

    def release(self, works) -> None:
        """Delete the checkpoints of finished work dirs (``keep_checkpoints=False``)."""
        if self.keep_checkpoints:
            return
        for work in works:
            for path in glob.glob(osp.join(self.trial_dir(work), '*.pth')):
                os.remove(path)

    # --- running ---
    def module_env(self) -> Dict[str, str]:
        """The environment of a ``python -m kdzoo...`` child: this kdzoo first on the path."""
        env = {**os.environ, **self.env}
        root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
        env['PYTHONPATH'] = os.pathsep.join(filter(None, [root, env.get('PYTHONPATH')]))
        return env

    def preflight(self, params: Dict[str, Any], timeout: float = 600.0) -> Optional[str]:
        """Build the candidate ``params`` and run one training batch in a child process
        (:mod:`kdzoo.search.preflight`); ``None`` when it works, else the error."""
        work = osp.join(self.work_dir, 'preflight')
        path = self.write_config(self.make_config(params), osp.join(work, 'config.py'),
                                 self.describe(-1, params).replace('trial -1', 'pre-flight'))
        cmd = [self.python, '-m', 'kdzoo.search.preflight', path, work]
        env = self.module_env()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return f'no batch after {timeout:g}s (config: {path})'
        if proc.returncode == 0:
            return None
        with open(osp.join(work, 'preflight.log'), 'w') as f:
            f.write(proc.stdout + proc.stderr)
        lines = [line for line in (proc.stdout + proc.stderr).splitlines()
                 if line.startswith('PREFLIGHT FAILED: ')]
        cause = lines[-1][len('PREFLIGHT FAILED: '):] if lines else _tail(
            osp.join(work, 'preflight.log'), 3).strip()
        return f'{cause} (config: {path}; log: {osp.join(work, "preflight.log")})'

    def log_path(self, job: Job) -> str:
        """Where the job's training output goes."""
        return osp.join(self.trial_dir(job.work), job.log_name)

    def __call__(self, job: Job, monitor: Optional[TrialMonitor] = None) -> TrialResult:
        trial_dir = self.trial_dir(job.work)
        cfg = self.job_config(job)
        comment = self.describe(job.work, job.params) + (f'\n{job.note}' if job.note else '')
        config_path = self.write_config(cfg, osp.join(trial_dir, 'config.py'), comment)
        attrs = dict(config=config_path)
        if self.count_params:
            try:
                attrs['param_count'] = self.student_param_count(cfg)
            except Exception as err:  # the training process will tell what is wrong
                attrs['param_count_error'] = repr(err)[:500]
        result = None
        try:
            result = self.train(config_path, trial_dir, monitor, resume=job.resume,
                                log_name=job.log_name)
        finally:
            # MMEngine's Runner dumps its config to WORK_DIR/<config name>, i.e. over this
            # file (adding work_dir and launcher); put the plain, re-runnable one back.
            # A failure here must not hide the training's result or exception.
            try:
                self.write_config(cfg, config_path, comment)
            except OSError as err:
                if result is not None:
                    result.attrs['config_restore_error'] = str(err)
        if not job.keep_checkpoints:
            self.release([job.work])
        result.attrs = {**attrs, **result.attrs}
        return result

    def command(self, config_path: str, trial_dir: str) -> List[str]:
        """The training command of a trial: ``tools/train.py``, or torchrun with
        ``gpus`` processes."""
        program = [self.train_script] if self.train_script else ['-m', 'kdzoo.cli.train']
        train = program + [config_path, '--work-dir', trial_dir]
        if self.gpus == 1:
            return [self.python] + train
        return [self.python, '-m', 'torch.distributed.run', f'--nproc_per_node={self.gpus}',
                '--master_addr=127.0.0.1', f'--master_port={free_port()}'] + train + \
            ['--launcher', 'pytorch']

    def warm_launch(self) -> bool:
        """Whether this runner's single-process trials are forked from a fork server."""
        return self.launcher == 'fork' and self.gpus == 1 and self.fork_error is None

    def warm_up(self, env: Optional[Dict[str, str]] = None,
                wait: bool = True) -> Optional[ForkServer]:
        """The warm fork server for trials with environment ``env`` (default: this
        runner's); started (again) when there is none or its environment differs.
        ``wait=False``: ``None`` while it is still warming up (that trial spawns; the
        search's first trial does not wait for the imports). ``None`` too when trials
        spawn (``launcher='spawn'``, no fork on this system, or the server could not
        start: logged once)."""
        if not self.warm_launch():
            return None
        env = {**os.environ, **self.env} if env is None else env
        server = self.fork_server
        if server is not None and (not server.alive or server.env != env):
            server.close()
            server = self.fork_server = None
        error = None
        if server is None:
            error = fork_available()
            if error is None:
                root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
                server = ForkServer(self.python, env,
                                    modules=preload_modules(self.cfg.pretty_text),
                                    datasets=dataset_dicts(self.cfg.to_dict()),
                                    log_path=osp.join(self.work_dir, 'forkserver.log'),
                                    module_path=root)
                try:
                    os.makedirs(self.work_dir, exist_ok=True)
                    server.start(wait=False)
                    self.fork_server = server
                except OSError as err:
                    error = f'the fork server did not start: {err}'
        if error is None:
            try:
                if server.ready(None if wait else 0.0) is not None:
                    return server
                return None
            except (OSError, RuntimeError) as err:
                self.fork_server = None
                error = f'the fork server did not start: {err}'
        self.fork_error = error
        self.log(f"[search] search.trial_launcher='fork': {error}; every trial starts a new "
                 f"interpreter instead (trial_launcher='spawn')")
        return None

    def close(self) -> None:
        """Stop the fork server (a later trial starts a new one)."""
        if self.fork_server is not None:
            self.fork_server.close()
            self.fork_server = None

    def launch(self, cmd: List[str], log, env: Dict[str, str]):
        """Start the training command ``cmd`` with output on the file ``log``: forked from
        the fork server (a :class:`~kdzoo.search.forkserver.WarmTrial`) or a new process
        (a :class:`subprocess.Popen`)."""
        server = self.warm_up(env, wait=False) if self.gpus == 1 else None
        if server is not None:
            # cmd: python -m kdzoo.cli.train ARGS, or python SCRIPT ARGS
            script, argv = (None, cmd[3:]) if cmd[1] == '-m' else (cmd[1], cmd[2:])
            try:
                return server.launch(argv, log.fileno(), env, script=script)
            except (OSError, RuntimeError) as err:
                self.close()
                self.log(f'[search] {err}; this trial starts a new interpreter')
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=_die_with_parent if os.name == 'posix' else None)

    def test(self, config_path: str, checkpoint: str, out: str, work_dir: str) -> None:
        """Evaluate ``checkpoint`` with the test split of ``config_path`` (``python -m
        kdzoo.cli.test``) and write its metrics to ``out``."""
        cmd = [self.python, '-m', 'kdzoo.cli.test', config_path, checkpoint, '--out', out,
               '--work-dir', work_dir]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.module_env())
        if proc.returncode:
            raise RuntimeError(f'testing {checkpoint} failed: {proc.stderr[-2000:]}')

    def train(self, config_path: str, trial_dir: str, monitor: Optional[TrialMonitor] = None,
              resume: bool = False, log_name: str = 'train.log') -> TrialResult:
        """Train ``config_path`` in ``trial_dir`` (``resume``: continue from the dir's
        last checkpoint, e.g. with a larger ``max_epochs``).

        While it trains, the ``monitor`` gets heartbeats, each validation value as it
        appears (it may stop the trial: Optuna's pruner) and the progress. A run stopped by
        :class:`~kdzoo.engine.LossSuppressionHook` FAILS with an error that starts with
        ``suppressed:`` and the user attribute ``suppressed`` (the hook's
        ``suppression.json``); one ended by :class:`~kdzoo.engine.EarlyStopOnGoodEnoughHook`
        gets the attribute ``early_stopped``.
        """
        monitor = monitor or TrialMonitor()
        log_path = osp.join(trial_dir, log_name)
        cmd = self.command(config_path, trial_dir)
        if resume:
            cmd.append('--resume')
        status = {name: osp.join(trial_dir, f'{name}.json')
                  for name in ('suppression', 'early_stop', 'diverged')}
        for path in status.values():  # left by an earlier rung of this trial
            if osp.isfile(path):
                os.remove(path)
        env = {**os.environ, **self.env}
        start = last_beat = time.time()
        watch = TrainingWatch(trial_dir, log_path, self.objective.metric, start)
        with open(log_path, 'w') as log:
            proc = self.launch(cmd, log, env)
            try:
                while True:
                    try:
                        returncode = proc.wait(timeout=min(self.poll_interval,
                                                           self.heartbeat_interval))
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    now = time.time()
                    if now - last_beat >= self.heartbeat_interval:
                        monitor.beat()
                        last_beat = now
                    monitor.progress(**watch.progress())
                    for step, value in watch.new_values():
                        if monitor.report(step, value):
                            _stop(proc)
                            return TrialResult(value=value, pruned=f'pruned by the study\'s '
                                               f'pruner after epoch {step} ({value:g})',
                                               attrs=dict(pruned_at_step=step))
                    if self.timeout and now - start > self.timeout:
                        _stop(proc)
                        return TrialResult(error=f'timed out after {self.timeout:g}s')
            except BaseException:
                _stop(proc)
                raise
        for step, value in watch.new_values():  # the last validations
            monitor.report(step, value)
        suppressed = read_json(status['suppression'])
        if returncode != 0 and suppressed is not None:
            return TrialResult(error=f'suppressed: {suppressed.get("reason")} (iteration '
                               f'{suppressed.get("iter")}; log: {log_path})',
                               attrs=dict(suppressed=suppressed))
        diverged = read_json(status['diverged'])  # kdzoo.engine.FiniteLossHook
        if returncode != 0 and diverged is not None:
            return TrialResult(error=f'diverged: {diverged.get("reason")} (log: {log_path})',
                               attrs=dict(diverged=diverged))
        if returncode != 0:
            tail = _tail(log_path)
            lines = [line.strip() for line in tail.splitlines() if line.strip()]
            errors = [line for line in lines if re.match(r'^[\w.]+(Error|Exception)\b', line)]
            cause = (errors or lines or ['no output'])[-1]
            return TrialResult(error=f'the training exited with {returncode}: {cause} (log: '
                               f'{log_path})\n{tail}')
        result = metric_from_scalars(read_scalars(trial_dir), self.objective.metric)
        stopped = read_json(status['early_stop'])
        if stopped is not None:
            result.attrs['early_stopped'] = stopped
        return result
