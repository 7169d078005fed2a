"""The one search loop: plan / ask / assign / evaluate / tell, for every searcher.

Optuna's storage is the source of truth: every round starts from the stored trials, so
several workers may share one storage (a journal file, SQLite, PostgreSQL) and a resumed
search continues where it stopped. The searcher decides (:mod:`kdzoo.search.protocol`);
the loop acts: it stores the searcher's records, enqueues, asks, claims the trial for this
worker, runs the evaluator with a heartbeat, tells the result and logs one line per trial.

Trials that are never trained are PRUNED, with the reason in the user attribute
``pruned_reason`` (an invalid transform chain, a duplicate of an earlier trial, a budget
already used by other workers, a rung another worker took first).
"""
import time
import traceback
from typing import Callable, Optional

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from .protocol import Job, Plan, Reject, SearchState, TrialMonitor, TrialResult
from .settings import Objective
from .space import SearchSpace
from .trials import TrialBook, lost_trial_message


class LoopMonitor(TrialMonitor):
    """The loop's side of a running trial: heartbeats into the storage, intermediate values
    to Optuna (``trial.report``; the study's pruner may stop single-objective trials) and
    progress to ``on_progress``."""

    def __init__(self, loop: 'SearchLoop', trial, job: Job):
        self.loop = loop
        self.trial = trial
        self.job = job
        self.beat = loop.book.heartbeat(trial.number)
        self.single = len(loop.study.directions) == 1
        self.steps = set()

    def report(self, step: int, value: float) -> bool:
        if not self.single or step in self.steps:  # Optuna: one objective, once per step
            return False
        self.steps.add(step)
        self.trial.report(value, step)
        return self.trial.should_prune()

    def progress(self, **info) -> None:
        if self.loop.on_progress is not None:
            self.loop.on_progress(dict(info, trial=self.trial.number, label=self.job.label,
                                       best=self.loop.best_text()))


class SearchLoop:
    """Runs a searcher's plans until it stops.

    Args:
        book: the study and its bookkeeping (:class:`~kdzoo.search.trials.TrialBook`).
        space: the search space.
        searcher: a :class:`~kdzoo.search.searchers.BaseSearcher`.
        evaluate: ``evaluate(job, heartbeat) -> TrialResult`` (a
            :class:`~kdzoo.search.runner.TrialRunner`, a tabular objective, or any function).
        n_trials: the study-wide budget: COMPLETE + FAIL + RUNNING + WAITING trials, not
            counting PRUNED (never trained) and interrupted (retried) ones.
        objective: the metric's name and direction (for the log lines).
        max_rejects: stop after this many proposals in a row were invalid or duplicates.
        on_trial_end: called with the study after each trained trial (e.g. the report).
        on_progress: called with a dict (``trial``, ``label``, ``epoch``, ``iter``,
            ``iters``, ``eta``, ``best``) while a trial trains (e.g. a progress display).
        log: where progress lines go (``print`` by default; ``None`` silences them).
        stale_after: seconds without a heartbeat after which a RUNNING trial of another
            host's worker counts as orphaned.
        max_epochs: the proxy schedule's epochs (successive halving's default budget).
    """

    def __init__(self, book: TrialBook, space: SearchSpace, searcher, evaluate: Callable,
                 n_trials: int, objective: Objective = Objective(), max_rejects: int = 200,
                 on_trial_end: Optional[Callable] = None,
                 log: Optional[Callable[[str], None]] = print, stale_after: float = 600.0,
                 max_epochs: Optional[int] = None,
                 on_progress: Optional[Callable[[dict], None]] = None):
        self.book = book
        self.study = book.study
        self.space = space
        self.searcher = searcher
        self.evaluate = evaluate
        self.n_trials = int(n_trials)
        self.objective = objective
        self.max_rejects = max_rejects
        self.on_trial_end = on_trial_end
        self.log = log or (lambda msg: None)
        self.stale_after = float(stale_after)
        self.max_epochs = max_epochs
        self.on_progress = on_progress
        self.release = getattr(evaluate, 'release', lambda works: None)

    def state(self) -> SearchState:
        return SearchState(self.study.get_trials(deepcopy=False), dict(self.study.user_attrs),
                           self.n_trials, self.study.directions[0].name.lower())

    def act(self, plan: Plan) -> None:
        """Store a plan's records and release its work dirs."""
        for key, value in plan.records.items():
            self.study.set_user_attr(key, value)
        if plan.release:
            self.release(sorted(plan.release))

    def best_text(self) -> str:
        best = self.searcher.best_trial(self.study)
        if best is None:
            return 'best -'
        return f'best {best.values[0]:.4f} (trial {best.number})'

    # --- the loop ---
    def run(self) -> str:
        """Search until the searcher stops; returns why it stopped."""
        first = self.searcher.begin(self.space, self.state(), self.max_epochs,
                                    self.stale_after)
        self.act(first)
        if first.reason:
            self.log(f'[search] {first.reason}')
        rejects, waiting_for = 0, None
        while True:
            plan = self.searcher.plan(self.state())
            self.act(plan)
            if plan.action == 'stop':
                reason = plan.reason
                break
            if plan.action == 'wait':
                self._wait(plan, waiting_for)
                waiting_for = plan.reason
                continue
            waiting_for = None
            if rejects >= self.max_rejects:
                reason = (f'{rejects} proposals in a row were invalid or duplicates (a small '
                          f'or mostly invalid space?)')
                break
            outcome = self._round(plan)
            if isinstance(outcome, Reject) and outcome.stop:
                reason = outcome.reason
                break
            rejects = rejects + 1 if isinstance(outcome, Reject) else 0
        self.act(self.searcher.end(self.state()))
        self.log(f'[search] stopped: {reason}; {self.best_text()}')
        return reason

    def _wait(self, plan: Plan, waiting_for: Optional[str]) -> None:
        recovered = self.book.recover_orphans(self.stale_after)
        if recovered:
            self.log(f'[search] trials {recovered} had no live worker; marked FAILED and '
                     f're-enqueued')
        elif plan.reason != waiting_for:
            self.log(f'[search] waiting: {plan.reason}')
        time.sleep(plan.wait_s)

    def _round(self, plan: Plan):
        """Ask one trial and run or reject it; returns the Job or the Reject."""
        if plan.enqueue is not None:
            self.study.enqueue_trial(dict(plan.enqueue), user_attrs=dict(plan.attrs))
        trial = self.study.ask(self.space.distributions())
        self.book.claim(trial.number)
        state = self.state()
        decision = self.searcher.assign(state.trial(trial.number), state, plan)
        for key, value in decision.attrs.items():
            trial.set_user_attr(key, value)
        if isinstance(decision, Reject):
            trial.set_user_attr('pruned_reason', decision.reason)
            self.study.tell(trial, state=TrialState.PRUNED)
            self.log(f'[search] trial {trial.number} PRUNED ({decision.reason})')
            return decision
        try:
            result = self._evaluate(trial, decision)
        except UpdateFinishedTrialError:
            self.log(lost_trial_message(trial.number))
            return Reject('finished by another worker')
        self.act(self.searcher.told(decision, result, self.state()))
        if self.on_trial_end is not None:
            self.on_trial_end(self.study)
        return decision

    def _evaluate(self, trial, job: Job) -> TrialResult:
        start = time.time()
        log_path = getattr(self.evaluate, 'log_path', None)
        if log_path is not None:
            self.log(f'[search] {job.label or f"trial {trial.number}"} started; log: '
                     f'{log_path(job)}')
        try:
            result = self.evaluate(job, LoopMonitor(self, trial, job))
        except (KeyboardInterrupt, SystemExit):
            self.book.interrupt(trial.number, job.params,
                                'interrupted: the search worker was stopped; retried')
            self.log(f'[search] trial {trial.number} interrupted; it will be retried')
            raise
        except Exception:  # a bug in evaluation: fail this trial, keep searching
            result = TrialResult(error=traceback.format_exc(limit=5))
        duration = time.time() - start
        for key, value in result.attrs.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr('duration_s', round(duration, 3))
        missing = [k for k in self.searcher.extra_objectives if k not in result.attrs]
        if result.error is None and missing:
            result = TrialResult(error=f'objectives {missing} unavailable: '
                                 f'{result.attrs.get("param_count_error", "not measured")}',
                                 attrs=result.attrs)
        choice = ' '.join(f'{k}={v}' for k, v in job.params.items())
        head = f'[search] {job.label or f"trial {trial.number}"}'
        if result.pruned is not None:
            trial.set_user_attr('pruned_reason', result.pruned)
            self.study.tell(trial, state=TrialState.PRUNED)
            self.log(f'{head} PRUNED in {duration:.1f}s: {result.pruned} | '
                     f'{self.best_text()} | {choice}')
            return result
        if result.error is not None:
            trial.set_user_attr('error', result.error[-4000:])
            self.study.tell(trial, state=TrialState.FAIL)
            kind = 'SUPPRESSED' if 'suppressed' in result.attrs else 'FAIL'
            first = result.error.strip().splitlines()[0] if result.error.strip() else ''
            self.log(f'{head} {kind} in {duration:.1f}s: {first} | {self.best_text()} '
                     f'| {choice}')
            return result
        values = self.searcher.values(result.value, dict(result.attrs))
        self.searcher.constrain(trial, dict(result.attrs))
        self.study.tell(trial, values if len(values) > 1 else values[0])
        notes = ''
        if 'param_count' in result.attrs:
            notes += f' ({result.attrs["param_count"]} student params)'
        if result.attrs.get('early_stopped'):
            notes += f' (early stop: {result.attrs["early_stopped"].get("reason")})'
        self.log(f'{head} COMPLETE {self.objective.metric}={result.value:.4f}{notes} in '
                 f'{duration:.1f}s | {self.best_text()} | {choice}')
        return result
