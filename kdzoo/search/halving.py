"""UniADS' successive halving with the loss-suppression protocol.

Rungs (``rung_schedule``): ``n_candidates`` distillers are sampled and trained for
``min_budget`` epochs; the best ``1/eta`` of them (by the metric) are *resumed* from their
checkpoints and trained up to ``eta`` times the budget, and so on until ``max_budget`` or
one candidate is left. Candidates whose training is suppressed
(:class:`~kdzoo.engine.LossSuppressionHook`: NaN / inf, an exploding or a non-decreasing
loss) or that fail are dropped at once, and the *operations* they used get their sampling
probability multiplied by ``suppression_factor`` for every candidate sampled later
(:mod:`kdzoo.search.operations`).

Optuna's pruners do not work in multi-objective studies, so the rungs are planned here on
Optuna's storage: every evaluation of a candidate at a rung is one Optuna trial with the
user attributes ``sh_bracket``, ``sh_rung``, ``sh_budget`` (epochs) and ``sh_candidate``
(the number of the candidate's first trial; its work dir is ``trials/<sh_candidate>``).
:class:`RungPlanner` derives the next step from the stored trials alone (it writes
nothing), so a resumed search continues where it stopped and several workers share the
rungs; the study attributes ``sh_schedule``, ``sh_eliminated`` (candidates not promoted)
and ``sh_probabilities`` (the current sampling probabilities) are records.
"""
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from kdzoo.registry import SEARCHERS
from kdzoo.utils import check_keys
from .operations import (ELIMINATED_ATTR, OPERATION_KINDS, PROBABILITIES_ATTR, ROLE_KEYS,
                         SCHEDULE_ATTR, OperationSampler, normalised, operation_weights,
                         prior_weights, role_of)
from .protocol import Job, Plan, Reject, SearchState, TrialResult
from .searchers import BaseSearcher, space_exhausted
from .space import SearchSpace
from .trials import counts_as_visit, is_orphan, trial_params


# --- rungs ------------------------------------------------------------------------------------
def rung_schedule(n_candidates: int, eta: float, min_budget: int,
                  max_budget: int) -> List[Tuple[int, int]]:
    """``[(candidates, budget in epochs), ...]`` per rung: ``n, n/eta, n/eta^2, ...``
    candidates at ``b, b*eta, b*eta^2, ...`` epochs, until ``max_budget`` or one candidate.

    >>> rung_schedule(8, 2, 1, 4)
    [(8, 1), (4, 2), (2, 4)]
    """
    if n_candidates < 1:
        raise ValueError(f'successive halving: n_candidates must be >= 1, got {n_candidates}')
    if eta <= 1:
        raise ValueError(f'successive halving: eta must be > 1, got {eta}')
    if not 1 <= min_budget <= max_budget:
        raise ValueError(f'successive halving: need 1 <= min_budget ({min_budget}) <= '
                         f'max_budget ({max_budget}) epochs')
    rungs = []
    n, budget = int(n_candidates), int(min_budget)
    while True:
        rungs.append((n, budget))
        if budget >= max_budget or n <= 1:
            return rungs
        n = max(1, int(n / eta))
        budget = min(int(max_budget), max(budget + 1, math.floor(budget * eta + 0.5)))


@dataclass
class Step:
    """The planner's decision: ``kind`` is ``'sample'`` (a new rung-0 candidate of
    ``bracket``), ``'promote'`` (``candidate`` with ``params`` to ``rung``), ``'wait'``,
    ``'stop'`` or ``'done'``; ``eliminated`` is the full set of candidates not promoted
    and ``dropped`` the ones newly found so."""
    kind: str
    reason: str = ''
    bracket: int = 0
    rung: int = 0
    budget: int = 0
    candidate: Optional[int] = None
    params: Dict[str, Any] = field(default_factory=dict)
    eliminated: Set[int] = field(default_factory=set)
    dropped: Set[int] = field(default_factory=set)

    @property
    def role(self) -> Dict[str, int]:
        return dict(sh_bracket=self.bracket, sh_rung=self.rung, sh_budget=self.budget,
                    sh_candidate=self.candidate)


def rank_by_metric(trials: Sequence[FrozenTrial], state: SearchState) -> List[FrozenTrial]:
    """Best metric first (ties: the earlier trial)."""
    return sorted(trials, key=lambda t: (-state.sign * t.values[0], t.number))


@dataclass
class RungPlanner:
    """Decides the next evaluation of successive halving from the stored trials (pure)."""
    space: SearchSpace
    schedule: List[Tuple[int, int]]
    brackets: int = 1
    refill: bool = False
    max_refills: Optional[int] = None
    #: orders a rung's completed trials best first (default: by the metric)
    rank: Optional[Callable[[Sequence[FrozenTrial], SearchState], List[FrozenTrial]]] = None

    @property
    def n0(self) -> int:
        return self.schedule[0][0]

    def groups(self, trials: Sequence[FrozenTrial]) -> Dict[Tuple[int, int], List]:
        """The trials of each ``(bracket, rung)`` that count (trained, training or failed;
        not pruned, queued or interrupted)."""
        groups = defaultdict(list)
        for t in trials:
            role = role_of(t)
            if role is not None and counts_as_visit(t) and t.state != TrialState.WAITING:
                groups[(role['sh_bracket'], role['sh_rung'])].append(t)
        return groups

    def next(self, state: SearchState) -> Step:
        trials = state.trials
        groups = self.groups(trials)
        queued = {(r['sh_bracket'], r['sh_rung'], r['sh_candidate'])
                  for r in map(role_of, (t for t in trials if t.state == TrialState.WAITING))
                  if r is not None}
        known = set(state.study_attrs.get(ELIMINATED_ATTR, []))
        eliminated = set(known)
        max_refills = self.n0 if self.max_refills is None else int(self.max_refills)

        def step(kind, **kwargs):
            return Step(kind, eliminated=eliminated, dropped=eliminated - known, **kwargs)

        for bracket in range(self.brackets):
            for rung, (n_keep, budget) in enumerate(self.schedule):
                done = groups[(bracket, rung)]
                if rung == 0:
                    complete = [t for t in done if t.state == TrialState.COMPLETE]
                    running = [t for t in done if t.state == TrialState.RUNNING]
                    more = len(done) < self.n0 or (
                        self.refill and len(complete) + len(running) < self.n0
                        and len(done) < self.n0 + max_refills)
                    if more:
                        if not space_exhausted(self.space, trials):
                            return step('sample', bracket=bracket, budget=budget)
                        if not complete and not running:
                            return step('stop', reason=f'all {len(self.space)} valid '
                                        f'distillers of the space were tried')
                    continue
                before = groups[(bracket, rung - 1)]
                pending = [t.number for t in before if t.state == TrialState.RUNNING]
                if pending:  # the ranking needs them: other workers train them
                    return step('wait', reason=f'bracket {bracket} rung {rung - 1} trials '
                                f'{pending} are still training')
                previous = [t for t in before if t.state == TrialState.COMPLETE]
                if len(previous) <= 1:
                    break  # one candidate (or none) left: this bracket is done
                ranked = (self.rank or rank_by_metric)(previous, state)
                eliminated |= {t.user_attrs['sh_candidate'] for t in ranked[n_keep:]}
                evaluated = {t.user_attrs['sh_candidate'] for t in done}
                for t in ranked[:n_keep]:
                    candidate = t.user_attrs['sh_candidate']
                    if candidate not in evaluated and (bracket, rung, candidate) not in queued:
                        return step('promote', bracket=bracket, rung=rung, budget=budget,
                                    candidate=candidate, params=dict(t.params))
        return step('done', reason=f'{self.brackets} bracket(s) of successive halving done')

    def claimed_by_another(self, trial: FrozenTrial, role: Dict[str, int], resume: bool,
                           trials: Sequence[FrozenTrial]) -> Optional[str]:
        """Why this trial repeats what a concurrent worker took first (the lower trial
        number wins), or ``None``: a promotion of the same candidate to the same rung, or a
        rung-0 sample beyond the rung's candidates."""
        same_rung = []  # (trial, role) of the earlier trials of this bracket and rung
        for t in trials:
            other = role_of(t)
            if (other is not None and t.number < trial.number and counts_as_visit(t)
                    and t.state != TrialState.WAITING
                    and (other['sh_bracket'], other['sh_rung']) ==
                    (role['sh_bracket'], role['sh_rung'])):
                same_rung.append((t, other))
        if role['sh_rung'] > 0:
            taken = [t.number for t, other in same_rung
                     if other['sh_candidate'] == role['sh_candidate']]
            return f'promotion already taken by trial {taken[0]}' if taken else None
        if resume or 'retry_of' in trial.user_attrs:
            return None
        live = [t for t, _ in same_rung if t.state in (TrialState.COMPLETE, TrialState.RUNNING)]
        if len(same_rung) >= self.n0 and not (self.refill and len(live) < self.n0):
            return f'rung 0 of bracket {role["sh_bracket"]} already has its candidates'
        return None


# --- the searcher -----------------------------------------------------------------------------
@SEARCHERS.register_module(name='successive_halving')
class SuccessiveHalvingSearcher(BaseSearcher):
    """UniADS' successive halving with loss suppression (see the module doc).

    Args:
        n_candidates: candidates of the first rung (default: ``search.n_trials``).
        eta: keep the best ``1/eta`` per rung and multiply the budget by ``eta``.
        min_budget, max_budget: epochs of the first and the last rung (``max_budget``
            default: the proxy's ``train_cfg.max_epochs``).
        brackets: run the whole halving this many times; each bracket samples new
            candidates with the probabilities left by the earlier ones.
        suppression_factor: multiplies the sampling weight of an operation once per
            suppressed candidate that used it, in (0, 1].
        poor_factor: the same per candidate eliminated at a rung (1.0: no effect).
        probabilities: initial weights, ``{decision: [w per choice]}`` or
            ``{decision: {label: w}}``; default uniform.
        demote: the kinds of decisions whose choices are operations that get demoted.
        refill: replace rung-0 candidates that were suppressed or failed by new samples
            (drawn with the lowered probabilities), up to ``max_refills`` per bracket
            (default ``n_candidates``).
        poll_interval: seconds a worker waits before it looks again when the next rung
            needs results that other workers are still training.
    """

    def __init__(self, n_candidates: Optional[int] = None, eta: float = 2,
                 min_budget: int = 1, max_budget: Optional[int] = None, brackets: int = 1,
                 suppression_factor: float = 0.5, poor_factor: float = 1.0,
                 probabilities: Optional[Dict[str, Any]] = None,
                 demote: Sequence[str] = ('transform', 'distance', 'weight', 'tau'),
                 refill: bool = False, max_refills: Optional[int] = None,
                 poll_interval: float = 10.0, seed: Optional[int] = 0):
        super().__init__(seed)
        for name, value in (('suppression_factor', suppression_factor),
                            ('poor_factor', poor_factor)):
            if not 0 < value <= 1:
                raise ValueError(f'successive halving: {name} must be in (0, 1], got {value}')
        check_keys(demote, OPERATION_KINDS, 'successive halving: demote', ValueError)
        if int(brackets) < 1:
            raise ValueError(f'successive halving: brackets must be >= 1, got {brackets}')
        if eta <= 1:
            raise ValueError(f'successive halving: eta must be > 1, got {eta}')
        self.n_candidates = n_candidates
        self.eta = eta
        self.min_budget = int(min_budget)
        self.max_budget = max_budget
        self.brackets = int(brackets)
        self.suppression_factor = float(suppression_factor)
        self.poor_factor = float(poor_factor)
        self.probabilities = probabilities
        self.demote = tuple(demote)
        self.refill = bool(refill)
        self.max_refills = max_refills
        self.poll_interval = float(poll_interval)
        self.planner: Optional[RungPlanner] = None
        self._priors: Optional[Dict[str, List[float]]] = None

    rank = None  # a rung's survivors: by the metric (see RungPlanner)

    # --- sampling ---
    def _use_space(self, space: SearchSpace) -> None:
        if self.space is not space:
            self.space = space
            self._priors = prior_weights(space, self.probabilities)

    def sampler(self, space: SearchSpace) -> BaseSampler:
        self._use_space(space)
        return OperationSampler(space, lambda study: self.weights(
            study.get_trials(deepcopy=False), study.user_attrs), seed=self.seed)

    def weights(self, trials: Sequence[FrozenTrial],
                study_attrs: Dict[str, Any]) -> Dict[str, List[float]]:
        """The current sampling weights, from the stored trials."""
        return operation_weights(self.space, trials, self._priors, self.suppression_factor,
                                 self.poor_factor, study_attrs.get(ELIMINATED_ATTR, []),
                                 self.demote)

    def probabilities_of(self, state: SearchState) -> Dict[str, Dict[str, float]]:
        return normalised(self.weights(state.trials, state.study_attrs), self.space)

    # --- results ---
    def best_trial(self, study: Study) -> Optional[FrozenTrial]:
        """The best metric among the (feasible) trials of the largest budget reached."""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        complete = [t for t in complete if self.feasible(t)]
        if not complete:
            return None
        sign = 1 if study.directions[0].name == 'MAXIMIZE' else -1
        return max(complete, key=lambda t: (t.user_attrs.get('sh_budget', 0),
                                            sign * t.values[0], -t.number))

    def plots(self, study: Study, space: SearchSpace, work_dir: str, metric: str) -> None:
        """Adds the rung columns to ``results.csv`` / ``results.md`` and writes
        ``successive_halving.json`` and ``halving.png``."""
        from .report import write_halving_report
        write_halving_report(study, space, self, work_dir, metric)

    # --- the loop's interface ---
    def begin(self, space: SearchSpace, state: SearchState, max_epochs: Optional[int] = None,
              stale_after: float = 600.0) -> Plan:
        self._use_space(space)
        max_budget = self.max_budget if self.max_budget is not None else max_epochs
        if max_budget is None:
            raise ValueError('successive halving: set search.searcher.max_budget (epochs)')
        n0 = int(self.n_candidates or state.n_trials)
        schedule = rung_schedule(n0, self.eta, self.min_budget, int(max_budget))
        record = [list(rung) for rung in schedule]
        stored = state.study_attrs.get(SCHEDULE_ATTR)
        if stored is not None and [list(r) for r in stored] != record:
            raise ValueError(f'the study was searched with the rungs {stored} ([candidates, '
                             f'epochs]); this run has {record}. Use another --study-name '
                             f'or --work-dir for a new schedule')
        for t in state.trials:
            if is_orphan(t, stale_after):
                raise RuntimeError(f'trial {t.number} was left RUNNING by a stopped worker; '
                                   f'run the search again with --resume to retry it')
        self.planner = RungPlanner(space, schedule, self.brackets, self.refill,
                                   self.max_refills, rank=self.rank)
        self.max_budget_ = int(max_budget)
        rungs = ', '.join(f'{n} x {b} epoch{"s" if b > 1 else ""}' for n, b in schedule)
        return Plan(records={SCHEDULE_ATTR: record},
                    reason=f'successive halving: {self.brackets} bracket(s) of rungs {rungs} '
                    f'(eta {self.eta:g})')

    def plan(self, state: SearchState) -> Plan:
        if any(t.state == TrialState.WAITING for t in state.trials):
            return Plan()  # queued first: retries of interrupted rungs, search.enqueue
        step = self.planner.next(state)
        records = ({ELIMINATED_ATTR: sorted(step.eliminated)} if step.dropped else {})
        release = sorted(step.dropped)
        if step.kind in ('done', 'stop'):
            return Plan('stop', step.reason, records=records, release=release)
        if step.kind == 'wait':
            return Plan('wait', step.reason, records=records, release=release,
                        wait_s=self.poll_interval)
        if step.kind == 'promote':
            return Plan(enqueue=step.params, attrs=step.role, records=records,
                        release=release)
        return Plan(attrs=dict(sh_bracket=step.bracket), records=records, release=release)

    def _role(self, trial: FrozenTrial, state: SearchState,
              plan: Plan) -> Tuple[Dict[str, int], bool]:
        """The trial's rung role and whether it resumes a checkpoint."""
        attrs = trial.user_attrs
        if 'sh_rung' in attrs:  # a promotion
            return {k: int(attrs[k]) for k in ROLE_KEYS}, int(attrs['sh_rung']) > 0
        if 'retry_of' in attrs:  # the retry of an interrupted rung continues its candidate
            role = role_of(state.trial(int(attrs['retry_of'])))
            if role is not None:
                return role, True
        # a new candidate (or a warm start of search.enqueue)
        if 'sh_bracket' in plan.attrs:
            bracket = plan.attrs['sh_bracket']
        else:
            step = self.planner.next(state)
            bracket = step.bracket if step.kind == 'sample' else 0
        return dict(sh_bracket=bracket, sh_rung=0, sh_budget=self.planner.schedule[0][1],
                    sh_candidate=trial.number), False

    def assign(self, trial: FrozenTrial, state: SearchState, plan: Plan) -> Union[Job, Reject]:
        role, resume = self._role(trial, state, plan)
        params = dict(trial.params)
        candidate, rung = role['sh_candidate'], role['sh_rung']
        reason = (self.space.check(params)
                  or self.planner.claimed_by_another(trial, role, resume, state.trials))
        if reason is None and rung == 0 and not resume:
            path = self.space.path_of(params)
            others = [t.number for t in state.trials
                      if t.number < trial.number and counts_as_visit(t)
                      and self.space.path_of(trial_params(t)) == path]
            reason = f'duplicate of trial {others[0]}' if others else None
        if reason is not None:
            return Reject(reason, attrs=role)
        attrs = dict(role)
        if rung == 0 and not resume:
            probs = self.probabilities_of(state)
            attrs['sh_sampled_with'] = {d.name: probs[d.name][str(params[d.name])]
                                        for d in self.space.decisions}
        budget = role['sh_budget']
        note = (f'successive halving: rung {rung}, {budget} of {self.max_budget_} epochs'
                + (' (resumed from the previous rung)' if resume else ''))
        label = (f'trial {trial.number} (bracket {role["sh_bracket"]}, rung {rung}, {budget} '
                 f'epoch{"s" if budget > 1 else ""}, candidate {candidate}'
                 f'{", resumed" if resume else ""})')
        return Job(trial.number, params, work=candidate, budget=budget,
                   max_budget=self.max_budget_, resume=resume, keep_checkpoints=True,
                   log_name='train.log' if rung == 0 else f'train_rung{rung}.log',
                   note=note, label=label, attrs=attrs)

    def told(self, job: Job, result: TrialResult, state: SearchState) -> Plan:
        return Plan(records={PROBABILITIES_ATTR: self.probabilities_of(state)},
                    release=[job.work] if result.error is not None else [])

    def end(self, state: SearchState) -> Plan:
        candidates = {t.user_attrs['sh_candidate'] for t in state.trials
                      if 'sh_candidate' in t.user_attrs}
        return Plan(records={PROBABILITIES_ATTR: self.probabilities_of(state)},
                    release=sorted(candidates))


__all__ = ['SuccessiveHalvingSearcher', 'RungPlanner', 'Step', 'rung_schedule',
           'rank_by_metric',
           'SCHEDULE_ATTR', 'ELIMINATED_ATTR', 'PROBABILITIES_ATTR']
