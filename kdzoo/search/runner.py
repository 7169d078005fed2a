"""The search loop and the trial runner.

Optuna's storage is the source of truth: a worker asks for a trial, writes its config
(``WORK_DIR/trials/<number>/config.py``, an ordinary MMEngine config), runs
``tools/train.py`` on it as a child process, reads the metric from the run's
``scalars.json`` and tells the result. No Optuna object enters the training process; a
crash, a timeout or a non-finite loss / metric becomes a FAILED trial and the search goes
on. Several workers may share one storage (a journal file, SQLite, PostgreSQL).

Bookkeeping kept in the storage (trial system attributes):

- ``kdzoo:worker`` (host, pid, process start time) and ``kdzoo:heartbeat`` (a time stamp
  refreshed while the trial trains) tell whether a RUNNING trial still has a live worker;
- ``kdzoo:interrupted`` marks trials whose worker died (or was stopped): they are FAILED
  and re-enqueued once with the same parameters, and neither counts against ``n_trials``
  nor as a duplicate.

Trials that are never trained are PRUNED, with the reason in the user attribute
``pruned_reason``: an invalid transform chain, a duplicate of an earlier trial, or a worker
that found the budget already used.
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
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import optuna
from mmengine.config import Config
from optuna.exceptions import UpdateFinishedTrialError
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from .samplers import INTERRUPTED_KEY, counts_as_visit, trial_params
from .space import SearchSpace

WORKER_KEY = 'kdzoo:worker'
HEARTBEAT_KEY = 'kdzoo:heartbeat'
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: Keys of ``search`` in a config, with their defaults.
SEARCH_DEFAULTS = dict(
    searcher=dict(type='random'),
    n_trials=16,
    seed=0,
    metric='accuracy/top1',
    direction='maximize',
    space=None,
    proxy=dict(),
    enqueue=[],
    trial_timeout=None,
    trial_env=dict(),
    trial_gpus=1,
    heartbeat_interval=60.0,
    stale_after=600.0,
    max_rejects=200,
    keep_checkpoints=True,
)


def search_settings(search: Optional[dict]) -> dict:
    """``search`` of a config with defaults filled in and unknown keys refused."""
    if not search:
        raise KeyError('the config has no "search" dict; see docs/search.md')
    search = copy.deepcopy(dict(search))
    unknown = sorted(set(search) - set(SEARCH_DEFAULTS))
    if unknown:
        raise KeyError(f'search has unknown keys {unknown}; valid: {sorted(SEARCH_DEFAULTS)}')
    out = copy.deepcopy(SEARCH_DEFAULTS)
    out.update(search)
    if out['space'] is None:
        raise KeyError('search.space is missing')
    if out['direction'] not in ('maximize', 'minimize'):
        raise ValueError(f'search.direction={out["direction"]!r}; valid: maximize, minimize')
    if not isinstance(out['trial_gpus'], int) or out['trial_gpus'] < 1:
        raise ValueError(f'search.trial_gpus={out["trial_gpus"]!r}; must be an int >= 1 '
                         f'(training processes per trial)')
    return out


# --- proxy settings --------------------------------------------------------------------------
def apply_proxy(cfg: Config, proxy: Optional[dict]) -> Config:
    """Apply the proxy settings (a cheap stand-in for the full training) to ``cfg``.

    Keys: ``train_indices`` / ``val_indices`` (a subset: an int or a list), ``max_epochs``
    (epoch-based schedules whose ``T_max`` / ``end`` equalled the old ``max_epochs`` follow
    it), ``max_iters``, ``val_interval``, and ``cfg_options`` (any other dotted overrides).
    ``suppression`` / ``good_enough`` (dicts of arguments, ``True`` for the defaults) add a
    :class:`~kdzoo.engine.LossSuppressionHook` / :class:`~kdzoo.engine.EarlyStopOnGoodEnoughHook`
    to ``custom_hooks``.
    """
    proxy = dict(proxy or {})
    unknown = sorted(set(proxy) - set(PROXY_KEYS))
    if unknown:
        raise KeyError(f'search.proxy has unknown keys {unknown}; valid: '
                       f'{", ".join(PROXY_KEYS)}')
    options = {}
    if 'train_indices' in proxy:
        options['train_dataloader.dataset.indices'] = proxy['train_indices']
    if 'val_indices' in proxy:
        options['val_dataloader.dataset.indices'] = proxy['val_indices']
    for key in ('max_epochs', 'max_iters', 'val_interval'):
        if key in proxy:
            options[f'train_cfg.{key}'] = proxy[key]
    if 'max_epochs' in proxy and cfg.get('param_scheduler') is not None:
        old = cfg.get('train_cfg', {}).get('max_epochs')
        schedulers = cfg.param_scheduler
        for sched in schedulers if isinstance(schedulers, (list, tuple)) else [schedulers]:
            if not sched.get('by_epoch', True):
                continue
            for key in ('T_max', 'end'):
                if key in sched and sched[key] == old:
                    sched[key] = proxy['max_epochs']
    options.update(proxy.get('cfg_options') or {})
    cfg.merge_from_dict(options)
    for key, hook_type in PROXY_HOOKS.items():
        if proxy.get(key) not in (None, False):
            args = {} if proxy[key] is True else dict(proxy[key])
            add_custom_hook(cfg, dict(type=hook_type, **args))
    return cfg


#: Keys of ``search.proxy``.
PROXY_KEYS = ('train_indices', 'val_indices', 'max_epochs', 'max_iters', 'val_interval',
              'cfg_options', 'suppression', 'good_enough')
#: ``search.proxy`` keys that add a training hook to the trial configs.
PROXY_HOOKS = dict(suppression='LossSuppressionHook', good_enough='EarlyStopOnGoodEnoughHook')


def add_custom_hook(cfg: Config, hook: dict) -> Config:
    """Append ``hook`` to ``cfg.custom_hooks``, replacing a hook of the same type."""
    hooks = [h for h in (cfg.get('custom_hooks') or []) if h.get('type') != hook['type']]
    cfg.custom_hooks = hooks + [hook]
    return cfg


# --- storage / study --------------------------------------------------------------------------
def open_storage(url: Optional[str], work_dir: str):
    """The Optuna storage: a journal file (default ``WORK_DIR/search.journal``; any path
    ending in ``.journal`` / ``.log``) or an RDB URL (``sqlite:///x.db``,
    ``postgresql://user:pw@host/db``)."""
    if url is None or (url.endswith(('.journal', '.log')) and '://' not in url):
        path = url or osp.join(work_dir, 'search.journal')
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
        # An open(O_EXCL)-based lock also works on NFS, where workers on several nodes
        # share one file.
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    engine_kwargs = {}
    if url.startswith('sqlite'):
        if url.startswith('sqlite:///'):
            os.makedirs(osp.dirname(osp.abspath(url[len('sqlite:///'):])) or '.', exist_ok=True)
        engine_kwargs = dict(connect_args=dict(timeout=120))
    else:
        engine_kwargs = dict(pool_pre_ping=True)
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except Exception:  # workers starting together may race to create the schema
            if attempt == 4:
                raise
            time.sleep(1.0 + attempt)


def open_study(storage, study_name: str, directions: Sequence[str], sampler,
               space: SearchSpace, enqueue: Sequence[dict] = (),
               attrs: Optional[dict] = None) -> Study:
    """Create the study, or join it when it exists (workers, ``--resume``).

    The creator stores the space's signature and enqueues the warm-start points; a worker
    that joins checks that its space and directions are the same.
    """
    directions = [optuna.study.StudyDirection[d.upper()] for d in directions]
    try:
        storage.create_new_study(directions, study_name=study_name)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        created = False
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    if created:
        study.set_user_attr('space', space.signature())
        for key, value in (attrs or {}).items():
            study.set_user_attr(key, value)
        for params in enqueue:
            unknown = sorted(set(params) - set(space.names))
            if unknown:
                raise KeyError(f'search.enqueue: unknown parameters {unknown}; the space has '
                               f'{space.names}')
            study.enqueue_trial(dict(params), user_attrs=dict(enqueued=True))
        return study
    if list(study.directions) != directions:
        raise ValueError(f'study {study_name!r} exists with directions {study.directions}, '
                         f'this search has {directions}; use another --study-name')
    stored = study.user_attrs.get('space')
    if stored is not None and stored != space.signature():
        raise ValueError(f'study {study_name!r} exists with a different search space; use '
                         f'another --study-name or --work-dir to start a new search')
    return study


# --- workers and orphans ---------------------------------------------------------------------
def _process_start(pid: int) -> Optional[str]:
    """Start time of a process (Linux: /proc/<pid>/stat field 22), or None."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return None
    if fields[0] == 'Z':  # a zombie is dead
        return None
    return fields[19]


def worker_identity() -> dict:
    return dict(host=socket.gethostname(), pid=os.getpid(),
                start=_process_start(os.getpid()))


def worker_alive(worker: dict) -> Optional[bool]:
    """Whether ``worker`` runs (``None``: it runs on another host, unknown here)."""
    if worker.get('host') != socket.gethostname():
        return None
    pid = int(worker.get('pid', -1))
    if osp.isdir('/proc'):
        start = _process_start(pid)
        return start is not None and (worker.get('start') in (None, start))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_orphan(trial: FrozenTrial, stale_after: float, now: Optional[float] = None) -> bool:
    """A RUNNING trial whose worker is gone: a dead process on this host, or no heartbeat
    for ``stale_after`` seconds."""
    if trial.state != TrialState.RUNNING:
        return False
    worker = trial.system_attrs.get(WORKER_KEY)
    if worker:
        alive = worker_alive(worker)
        if alive is not None:
            return not alive
    now = time.time() if now is None else now
    beat = trial.system_attrs.get(HEARTBEAT_KEY)
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()
    return beat is None or now - float(beat) > stale_after


def interrupt_trial(study: Study, trial_id: int, number: int, params: dict,
                    reason: str) -> bool:
    """Mark a trial interrupted + FAILED and enqueue its retry (same parameters).

    Returns False when another worker finished it first (then nothing is enqueued), so
    concurrent calls never enqueue two retries.
    """
    storage = study._storage
    try:
        storage.set_trial_system_attr(trial_id, INTERRUPTED_KEY, True)
        storage.set_trial_user_attr(trial_id, 'error', reason)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    if params:
        study.enqueue_trial(dict(params), user_attrs=dict(retry_of=number))
    return True


def lost_trial_message(number: int) -> str:
    return (f'[search] trial {number} was finished by another worker; its result here is '
            f'dropped (two workers took one queued trial: SQLite has no row locks, use the '
            f'journal file or PostgreSQL for several workers)')


def recover_orphans(study: Study, stale_after: float = 600.0) -> List[int]:
    """FAIL the RUNNING trials left by dead workers and enqueue their retries."""
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_orphan(trial, stale_after):
            if interrupt_trial(study, trial._trial_id, trial.number, trial_params(trial),
                               'interrupted: its worker stopped; retried'):
                recovered.append(trial.number)
    return recovered


# --- one trial --------------------------------------------------------------------------------
@dataclass
class TrialResult:
    """What evaluating a trial gave: a metric, or an error (the trial FAILS)."""
    value: Optional[float] = None
    error: Optional[str] = None
    attrs: Dict[str, Any] = field(default_factory=dict)


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


class TrialRunner:
    """Writes a trial's config and trains it with ``tools/train.py`` in a child process.

    Args:
        cfg: the base config with the proxy settings applied (trial configs are copies).
        space: the search space.
        work_dir: the search's work dir; trial N lives in ``work_dir/trials/N``.
        metric: the scalars.json key read as the trial's value.
        full_cfg: the base config without proxy settings (for ``best_full_config.py``).
        train_script: default: this repository's ``tools/train.py``.
        env: extra environment variables of the child (e.g. ``OMP_NUM_THREADS``).
        timeout: seconds before a trial is killed and FAILS.
        heartbeat_interval: seconds between heartbeats while a trial trains.
        count_params: build the student in this process to record its parameter count
            (needed by ``nsga2``).
        keep_checkpoints: keep the trial's ``*.pth`` files (False: delete them once the
            metric is read).
        gpus: training processes per trial. Above 1, the trial runs through torchrun
            (``--nproc_per_node=gpus``, ``--launcher pytorch``) on a free local port: one
            process per GPU, or gloo processes on a CPU machine.
    """

    def __init__(self, cfg: Config, space: SearchSpace, work_dir: str,
                 metric: str = 'accuracy/top1', full_cfg: Optional[Config] = None,
                 train_script: Optional[str] = None, python: Optional[str] = None,
                 env: Optional[dict] = None, timeout: Optional[float] = None,
                 heartbeat_interval: float = 60.0, count_params: bool = True,
                 keep_checkpoints: bool = True, header: str = '', gpus: int = 1):
        model = cfg.get('model', {})
        if 'distill_terms' not in model:
            raise ValueError('the base config of a search must be a distiller config '
                             '(model.distill_terms); see docs/search.md')
        self.cfg = cfg
        self.full_cfg = full_cfg
        self.space = space
        self.work_dir = work_dir
        self.metric = metric
        self.train_script = train_script or osp.join(REPO_ROOT, 'tools', 'train.py')
        self.python = python or sys.executable
        self.env = {k: str(v) for k, v in (env or {}).items()}
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self.count_params = count_params
        self.keep_checkpoints = keep_checkpoints
        self.header = header
        self.gpus = int(gpus)

    # --- configs ---
    def trial_dir(self, number: int) -> str:
        return osp.join(self.work_dir, 'trials', str(number))

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

    def write_config(self, cfg: Config, path: str, comment: str = '') -> str:
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        text = ''.join(f'# {line}\n' for line in comment.splitlines()) + cfg.pretty_text
        tmp = f'{path}.tmp{os.getpid()}'
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
        return path

    def describe(self, number: int, params: Dict[str, Any]) -> str:
        pairs = ', '.join(f'{k}={v!r}' for k, v in params.items())
        return (f'{self.header}trial {number}: {pairs}\n'
                f're-run: python tools/train.py THIS_FILE --work-dir DIR')

    def student_param_count(self, cfg: Config) -> int:
        """Parameters of the student of ``cfg`` (built here on CPU; the teacher is not)."""
        from kdzoo.registry import MODELS
        from kdzoo.utils import register_all_modules
        register_all_modules()
        model = cfg.model
        student = model.get('student') if 'distill_terms' in model else model
        built = MODELS.build(copy.deepcopy(student))
        return int(sum(p.numel() for p in built.parameters()))

    # --- running ---
    def __call__(self, number: int, params: Dict[str, Any],
                 heartbeat: Callable[[], None] = lambda: None) -> TrialResult:
        trial_dir = self.trial_dir(number)
        cfg = self.make_config(params)
        config_path = self.write_config(cfg, osp.join(trial_dir, 'config.py'),
                                        self.describe(number, params))
        attrs = dict(config=config_path)
        if self.count_params:
            try:
                attrs['param_count'] = self.student_param_count(cfg)
            except Exception as err:  # the training process will tell what is wrong
                attrs['param_count_error'] = repr(err)[:500]
        try:
            result = self.train(config_path, trial_dir, heartbeat)
        finally:
            # MMEngine's Runner dumps its config to WORK_DIR/<config name>, i.e. over this
            # file (adding work_dir and launcher); put the plain, re-runnable one back.
            self.write_config(cfg, config_path, self.describe(number, params))
        result.attrs = {**attrs, **result.attrs}
        return result

    def command(self, config_path: str, trial_dir: str) -> List[str]:
        """The training command of a trial: ``tools/train.py``, or torchrun with
        ``gpus`` processes."""
        train = [self.train_script, config_path, '--work-dir', trial_dir]
        if self.gpus == 1:
            return [self.python] + train
        return [self.python, '-m', 'torch.distributed.run', f'--nproc_per_node={self.gpus}',
                '--master_addr=127.0.0.1', f'--master_port={free_port()}'] + train + \
            ['--launcher', 'pytorch']

    def train(self, config_path: str, trial_dir: str,
              heartbeat: Callable[[], None] = lambda: None, resume: bool = False,
              log_name: str = 'train.log') -> TrialResult:
        """Train ``config_path`` in ``trial_dir`` (``resume``: continue from the dir's
        last checkpoint, e.g. with a larger ``max_epochs``).

        A run stopped by :class:`~kdzoo.engine.LossSuppressionHook` FAILS with an error that
        starts with ``suppressed:`` and the user attribute ``suppressed`` (the hook's
        ``suppression.json``); one ended by :class:`~kdzoo.engine.EarlyStopOnGoodEnoughHook`
        gets the attribute ``early_stopped``.
        """
        log_path = osp.join(trial_dir, log_name)
        cmd = self.command(config_path, trial_dir)
        if resume:
            cmd.append('--resume')
        status = {name: osp.join(trial_dir, f'{name}.json')
                  for name in ('suppression', 'early_stop')}
        for path in status.values():  # left by an earlier rung of this trial
            if osp.isfile(path):
                os.remove(path)
        env = {**os.environ, **self.env}
        start = time.time()
        with open(log_path, 'w') as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    preexec_fn=_die_with_parent if os.name == 'posix' else None)
            try:
                while True:
                    try:
                        returncode = proc.wait(timeout=self.heartbeat_interval)
                        break
                    except subprocess.TimeoutExpired:
                        heartbeat()
                        if self.timeout and time.time() - start > self.timeout:
                            proc.kill()
                            proc.wait()
                            return TrialResult(error=f'timed out after {self.timeout:g}s')
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        if not self.keep_checkpoints:
            for path in glob.glob(osp.join(trial_dir, '*.pth')):
                os.remove(path)
        suppressed = _read_json(status['suppression'])
        if returncode != 0 and suppressed is not None:
            return TrialResult(error=f'suppressed: {suppressed.get("reason")} (iteration '
                               f'{suppressed.get("iter")}; log: {log_path})',
                               attrs=dict(suppressed=suppressed))
        if returncode != 0:
            tail = _tail(log_path)
            lines = [line.strip() for line in tail.splitlines() if line.strip()]
            errors = [line for line in lines if re.match(r'^[\w.]+(Error|Exception)\b', line)]
            cause = (errors or lines or ['no output'])[-1]
            return TrialResult(error=f'tools/train.py exited with {returncode}: {cause} (log: '
                               f'{log_path})\n{tail}')
        result = metric_from_scalars(read_scalars(trial_dir), self.metric)
        stopped = _read_json(status['early_stop'])
        if stopped is not None:
            result.attrs['early_stopped'] = stopped
        return result


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# --- the loop ---------------------------------------------------------------------------------
def params_key(params: Dict[str, Any]) -> str:
    return json.dumps(sorted(params.items()), default=str)


def budget_trials(trials: Sequence[FrozenTrial]) -> List[FrozenTrial]:
    """Trials that use the budget: trained, training or queued (see ``counts_as_visit``)."""
    return [t for t in trials if counts_as_visit(t)]


class SearchLoop:
    """Ask / evaluate / tell until ``n_trials`` trials (study-wide) have been used.

    Args:
        study, space, searcher: see :mod:`kdzoo.search`.
        evaluate: ``evaluate(number, params, heartbeat) -> TrialResult`` (a
            :class:`TrialRunner`, or any function in tests).
        n_trials: the study-wide budget: COMPLETE + FAIL + RUNNING + WAITING trials, not
            counting PRUNED (never trained) and interrupted (retried) ones.
        max_rejects: stop after this many proposals in a row were invalid or duplicates.
        on_trial_end: called with the study after each trial (e.g. to refresh the report).
        log: where progress lines go (``print`` by default; ``None`` silences them).
        stale_after: seconds without a heartbeat after which a RUNNING trial of another
            host's worker counts as orphaned (searchers that wait on other workers use it).
    """

    def __init__(self, study: Study, space: SearchSpace, searcher, evaluate: Callable,
                 n_trials: int, metric: str = 'accuracy/top1', max_rejects: int = 200,
                 on_trial_end: Optional[Callable[[Study], None]] = None,
                 log: Optional[Callable[[str], None]] = print, stale_after: float = 600.0):
        self.study = study
        self.space = space
        self.searcher = searcher
        self.evaluate = evaluate
        self.n_trials = int(n_trials)
        self.metric = metric
        self.max_rejects = max_rejects
        self.on_trial_end = on_trial_end
        self.log = log or (lambda msg: None)
        self.worker = worker_identity()
        self.stale_after = float(stale_after)
        self.allow_duplicates = bool(getattr(searcher, 'allow_duplicates', False))
        self.stop_reason = ''

    # --- helpers ---
    def _exhausted(self, trials) -> bool:
        tried = {self.space.path_of(trial_params(t)) for t in budget_trials(trials)}
        tried.discard(None)
        return len(tried) >= len(self.space)

    def _heartbeat(self, trial_id: int) -> Callable[[], None]:
        def beat():
            try:
                self.study._storage.set_trial_system_attr(trial_id, HEARTBEAT_KEY, time.time())
            except Exception:  # a storage hiccup must not kill the trial
                pass
        return beat

    def _prune(self, trial, reason: str) -> None:
        trial.set_user_attr('pruned_reason', reason)
        self.study.tell(trial, state=TrialState.PRUNED)
        self.log(f'[search] trial {trial.number} PRUNED ({reason})')

    def _best_text(self) -> str:
        best = self.searcher.best_trial(self.study)
        if best is None:
            return 'best -'
        return f'best {best.values[0]:.4f} (trial {best.number})'

    # --- the loop ---
    def run(self) -> None:
        study, space = self.study, self.space
        rejects = 0
        while True:
            trials = study.get_trials(deepcopy=False)
            used = len(budget_trials(trials))
            waiting = any(t.state == TrialState.WAITING for t in trials)
            if used >= self.n_trials and not waiting:
                self.stop_reason = f'{used} of {self.n_trials} trials used'
                break
            if not self.allow_duplicates and self._exhausted(trials):
                self.stop_reason = f'all {len(space)} valid distillers of the space were tried'
                break
            if rejects >= self.max_rejects:
                self.stop_reason = (f'{rejects} proposals in a row were invalid or duplicates '
                                    f'(a small or mostly invalid space?)')
                break
            trial = study.ask(space.distributions())
            study._storage.set_trial_system_attr(trial._trial_id, WORKER_KEY, self.worker)
            trials = study.get_trials(deepcopy=False)
            earlier = [t for t in budget_trials(trials) if t.number < trial.number]
            if len(earlier) >= self.n_trials:
                self._prune(trial, 'budget already used by other workers')
                self.stop_reason = f'{self.n_trials} trials used'
                break
            params = dict(trial.params)
            reason = space.check(params)
            if reason is None and not self.allow_duplicates:
                key = params_key(params)
                dup = [t.number for t in earlier if params_key(trial_params(t)) == key]
                reason = f'duplicate of trial {dup[0]}' if dup else None
            if reason is not None:
                rejects += 1
                self._prune(trial, reason)
                continue
            rejects = 0
            try:
                self._run_trial(trial, params, position=len(earlier) + 1)
            except UpdateFinishedTrialError:
                self.log(lost_trial_message(trial.number))
            if self.on_trial_end is not None:
                self.on_trial_end(study)
        self.log(f'[search] stopped: {self.stop_reason}; {self._best_text()}')

    def _run_trial(self, trial, params: dict, position: int) -> None:
        start = time.time()
        try:
            result = self.evaluate(trial.number, params, self._heartbeat(trial._trial_id))
        except (KeyboardInterrupt, SystemExit):
            interrupt_trial(self.study, trial._trial_id, trial.number, params,
                            'interrupted: the search worker was stopped; retried')
            self.log(f'[search] trial {trial.number} interrupted; it will be retried')
            raise
        except Exception:  # a bug in evaluation: fail this trial, keep searching
            result = TrialResult(error=traceback.format_exc(limit=5))
        duration = time.time() - start
        for key, value in result.attrs.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr('duration_s', round(duration, 3))
        choice = ' '.join(f'{k}={v}' for k, v in params.items())
        head = f'[search] trial {trial.number} ({position}/{self.n_trials})'
        if 'retry_of' in trial.user_attrs:
            head += f' [retry of trial {trial.user_attrs["retry_of"]}]'
        if result.error is not None:
            trial.set_user_attr('error', result.error[-4000:])
            self.study.tell(trial, state=TrialState.FAIL)
            first = result.error.strip().splitlines()[0] if result.error.strip() else ''
            self.log(f'{head} FAIL in {duration:.1f}s: {first} | {self._best_text()} '
                     f'| {choice}')
            return
        missing = [k for k in getattr(self.searcher, 'extra_objectives', ())
                   if k not in result.attrs]
        if missing:
            result = TrialResult(error=f'objectives {missing} unavailable: '
                                 f'{result.attrs.get("param_count_error", "not measured")}')
            trial.set_user_attr('error', result.error)
            self.study.tell(trial, state=TrialState.FAIL)
            self.log(f'{head} FAIL: {result.error} | {self._best_text()} | {choice}')
            return
        values = self.searcher.values(result.value, {**result.attrs})
        self.searcher.constrain(trial, {**result.attrs})
        self.study.tell(trial, values if len(values) > 1 else values[0])
        size = (f' ({result.attrs["param_count"]} student params)'
                if 'param_count' in result.attrs else '')
        self.log(f'{head} COMPLETE {self.metric}={result.value:.4f}{size} in {duration:.1f}s'
                 f' | {self._best_text()} | {choice}')
