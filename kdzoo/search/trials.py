"""Trial bookkeeping in Optuna's storage, for every searcher.

Trial system attributes written here:

- ``kdzoo:worker`` (host, pid, process start time) and ``kdzoo:heartbeat`` (a time stamp
  refreshed while the trial trains) tell whether a RUNNING trial still has a live worker;
- ``kdzoo:interrupted`` marks trials whose worker died (or was stopped): they are FAILED
  and re-enqueued once with the same parameters (user attribute ``retry_of``), and count
  neither against ``n_trials`` nor as a duplicate.

Only Optuna's public API is used: the storage's methods and ``study.tell``.
"""
import json
import os
import os.path as osp
import random
import socket
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from optuna.exceptions import UpdateFinishedTrialError
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

WORKER_KEY = 'kdzoo:worker'
HEARTBEAT_KEY = 'kdzoo:heartbeat'
INTERRUPTED_KEY = 'kdzoo:interrupted'


# --- reading trials ----------------------------------------------------------------------------
def enqueued_params(trial: FrozenTrial) -> Dict[str, Any]:
    """The parameters fixed by ``study.enqueue_trial`` (Optuna keeps them in the system
    attribute ``fixed_params``; empty for a trial that was not enqueued)."""
    return dict(trial.system_attrs.get('fixed_params') or {})


def trial_params(trial: FrozenTrial) -> Dict[str, Any]:
    """The parameters of a trial; a WAITING trial's are its fixed (enqueued) ones."""
    if trial.params:
        return trial.params
    return enqueued_params(trial)


def counts_as_visit(trial: FrozenTrial) -> bool:
    """Trials that use the budget: trained (a trial that the study's pruner stopped after
    an intermediate value too), training or queued; not pruned before training, not
    interrupted."""
    if trial.state == TrialState.PRUNED:
        return 'pruned_at_step' in trial.user_attrs
    if trial.state == TrialState.FAIL and trial.system_attrs.get(INTERRUPTED_KEY):
        return False
    return True


def budget_trials(trials: Sequence[FrozenTrial]) -> List[FrozenTrial]:
    """The trials that use the budget (see :func:`counts_as_visit`)."""
    return [t for t in trials if counts_as_visit(t)]


def params_key(params: Dict[str, Any]) -> str:
    """A key that is equal for equal parameter assignments (duplicate detection)."""
    return json.dumps(sorted(params.items()), default=str)


def trial_rng(seed: Optional[int], number: int) -> random.Random:
    """A random stream that depends only on the search seed and the trial number, so that
    concurrent workers do not draw the same numbers and a resumed search draws the same."""
    return random.Random(f'kdzoo-{seed}-{number}')


# --- workers -------------------------------------------------------------------------------------
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


def lost_trial_message(number: int) -> str:
    return (f'[search] trial {number} was finished by another worker; its result here is '
            f'dropped (two workers took one queued trial: SQLite has no row locks, use the '
            f'journal file or PostgreSQL for several workers)')


# --- writing -------------------------------------------------------------------------------------
def _transient(err: Exception) -> bool:
    """An error of the storage's medium that may pass (disk, network, a busy database)."""
    if isinstance(err, OSError):
        return True
    try:
        import sqlalchemy.exc
    except ImportError:
        return False
    return isinstance(err, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.TimeoutError))


class TrialBook:
    """kdzoo's bookkeeping of one study, written through the storage's public methods.

    Args:
        study: the Optuna study.
        storage: the storage the study lives in (``open_storage``'s result, or the storage
            given to ``optuna.create_study``).
    """

    def __init__(self, study: Study, storage, log: Callable[[str], None] = print):
        self.study = study
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.worker = worker_identity()
        self.log = log

    def trials(self, states=None) -> List[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states)

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def claim(self, number: int) -> None:
        """Record this process as the worker of trial ``number``."""
        self.storage.set_trial_system_attr(self.trial_id(number), WORKER_KEY, self.worker)

    def heartbeat(self, number: int) -> Callable[[], None]:
        """A function that stamps trial ``number``'s heartbeat. A transient storage error
        (the file system, a dropped database connection) is logged once and retried at the
        next beat; any other error is logged every time. Neither stops the training."""
        trial_id = self.trial_id(number)
        told = set()

        def beat():
            try:
                self.storage.set_trial_system_attr(trial_id, HEARTBEAT_KEY, time.time())
            except Exception as err:
                transient = _transient(err)
                if not transient or 'transient' not in told:
                    told.add('transient' if transient else '')
                    self.log(f'[search] heartbeat of trial {number} not stored'
                             f'{" (retried at the next beat)" if transient else ""}: '
                             f'{type(err).__name__}: {err}')
        return beat

    def interrupt(self, number: int, params: Dict[str, Any], reason: str) -> bool:
        """Mark a trial interrupted + FAILED and enqueue its retry (same parameters).

        Returns False when another worker finished it first (then nothing is enqueued), so
        concurrent calls never enqueue two retries.
        """
        trial_id = self.trial_id(number)
        try:
            self.storage.set_trial_system_attr(trial_id, INTERRUPTED_KEY, True)
            self.storage.set_trial_user_attr(trial_id, 'error', reason)
            self.study.tell(number, state=TrialState.FAIL)
        except (UpdateFinishedTrialError, ValueError):
            return False
        if params:
            self.study.enqueue_trial(dict(params), user_attrs=dict(retry_of=number))
        return True

    def recover_orphans(self, stale_after: float = 600.0) -> List[int]:
        """FAIL the RUNNING trials left by dead workers and enqueue their retries."""
        recovered = []
        for trial in self.trials(states=(TrialState.RUNNING,)):
            if is_orphan(trial, stale_after) and self.interrupt(
                    trial.number, trial_params(trial),
                    'interrupted: its worker stopped; retried'):
                recovered.append(trial.number)
        return recovered
