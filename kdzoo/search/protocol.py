"""The small public interface between the search loop, the searchers and the evaluators.

One round of :class:`~kdzoo.search.loop.SearchLoop`:

1. the loop reads the stored trials into a :class:`SearchState`;
2. the searcher's ``plan(state)`` returns a :class:`Plan` (ask for a trial, wait for other
   workers, or stop), without side effects; the loop stores the plan's records, enqueues
   its trial and releases its checkpoints;
3. the loop asks Optuna for a trial; the searcher's ``assign(trial, params, state, plan)``
   turns it into a :class:`Job` (what to train, for how long, whether to resume) or a
   :class:`Reject` (why it is not trained);
4. the evaluator runs the job: ``evaluate(job, monitor) -> TrialResult`` (the
   :class:`TrialMonitor` takes heartbeats, intermediate values and progress)
   (:class:`~kdzoo.search.runner.TrialRunner` trains it; the tabular benchmark looks it up);
5. the loop tells Optuna, then asks the searcher ``told(...)`` for records to store.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from optuna.trial import FrozenTrial


@dataclass
class TrialResult:
    """What evaluating a trial gave: a metric, an error (the trial FAILS), or ``pruned``
    (Optuna's pruner stopped it after an intermediate value; the trial is PRUNED)."""
    value: Optional[float] = None
    error: Optional[str] = None
    attrs: Dict[str, Any] = field(default_factory=dict)
    pruned: Optional[str] = None


class TrialMonitor:
    """What an evaluator tells the loop while a trial trains (all optional).

    ``monitor()`` (or ``beat()``) stamps the trial's heartbeat; ``report(step, value)``
    passes an intermediate validation value and returns True when the trial should stop
    (Optuna's pruner); ``progress(**info)`` updates a progress display (``epoch``,
    ``iter``, ``iters``, ``eta``).
    """

    def beat(self) -> None:
        pass

    def __call__(self) -> None:
        self.beat()

    def report(self, step: int, value: float) -> bool:
        return False

    def progress(self, **info) -> None:
        pass


@dataclass
class Job:
    """One trial to train.

    Args:
        number: the Optuna trial number.
        params: the trial's parameters (labels of the space's decisions).
        work: the work dir's number, ``trials/<work>`` (a successive-halving rung continues
            its candidate's dir); default ``number``.
        budget, max_budget: train ``budget`` epochs of a schedule of ``max_budget`` epochs
            (``None``: the config's own schedule).
        resume: continue from the work dir's last checkpoint.
        keep_checkpoints: the checkpoints are needed later (a later rung resumes them),
            whatever ``search.keep_checkpoints`` says.
        log_name: the training log's file name in the work dir.
        note: an extra line for the head of the trial's config file.
        label: how the loop's log lines name the trial.
        attrs: user attributes stored on the trial before it trains (e.g. its rung role).
    """
    number: int
    params: Dict[str, Any]
    work: Optional[int] = None
    budget: Optional[int] = None
    max_budget: Optional[int] = None
    resume: bool = False
    keep_checkpoints: bool = False
    log_name: str = 'train.log'
    note: str = ''
    label: str = ''
    attrs: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.work is None:
            self.work = self.number


@dataclass
class Reject:
    """A trial that is not trained (it is PRUNED with ``reason``); ``stop`` ends the
    worker's search."""
    reason: str
    stop: bool = False
    attrs: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """What a searcher wants next.

    Args:
        action: ``'ask'`` (a trial), ``'wait'`` (other workers train what comes next; the
            loop recovers dead workers' trials and looks again after ``wait_s``) or
            ``'stop'``.
        reason: why (logged for ``wait`` and ``stop``).
        enqueue: parameters of a trial to enqueue before asking (e.g. a promotion).
        attrs: with ``enqueue``, the enqueued trial's user attributes; without, what the
            searcher's own ``assign`` needs to know of the plan.
        records: study user attributes to store (searcher state that reports read).
        release: work-dir numbers whose checkpoints are no longer needed.
        wait_s: seconds to wait before planning again.
    """
    action: str = 'ask'
    reason: str = ''
    enqueue: Optional[Dict[str, Any]] = None
    attrs: Dict[str, Any] = field(default_factory=dict)
    records: Dict[str, Any] = field(default_factory=dict)
    release: Sequence[int] = ()
    wait_s: float = 10.0


@dataclass
class SearchState:
    """The stored state that a searcher decides from (read-only)."""
    trials: List[FrozenTrial]
    study_attrs: Dict[str, Any]
    n_trials: int
    direction: str = 'maximize'

    @property
    def sign(self) -> int:
        """+1 when a larger metric is better, else -1."""
        return 1 if self.direction == 'maximize' else -1

    def trial(self, number: int) -> FrozenTrial:
        return self.trials[number]
