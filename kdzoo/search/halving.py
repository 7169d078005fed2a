"""UniADS' successive halving with the loss-suppression protocol.

Rungs (``rung_schedule``): ``n_candidates`` distillers are sampled and trained for
``min_budget`` epochs; the best ``1/eta`` of them (by the metric) are *resumed* from their
checkpoints and trained up to ``eta`` times the budget, and so on until ``max_budget`` or
one candidate is left. Candidates whose training is suppressed
(:class:`~kdzoo.engine.LossSuppressionHook`: NaN / inf, an exploding or a non-decreasing
loss) or that fail are dropped at once, and the *operations* they used (transform names,
distance, weight and tau values) get their sampling probability multiplied by
``suppression_factor`` for every candidate sampled later (refills, later brackets).

Optuna's pruners do not work in multi-objective studies, so this is kdzoo's own rung loop
on Optuna's storage. Every evaluation of a candidate at a rung is one Optuna trial with the
user attributes ``sh_bracket``, ``sh_rung``, ``sh_budget`` (epochs) and ``sh_candidate``
(the number of the candidate's first trial; its work dir is ``trials/<sh_candidate>``).
Everything else is derived from the stored trials, so a resumed search continues where it
stopped: the study attributes ``sh_schedule``, ``sh_eliminated`` (candidates not promoted)
and ``sh_probabilities`` (the current sampling probabilities) are records.
"""
import glob
import json
import math
import os
import os.path as osp
import time
import traceback
from collections import Counter, defaultdict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from kdzoo.registry import SEARCHERS
from .runner import (HEARTBEAT_KEY, WORKER_KEY, TrialResult, add_custom_hook, apply_proxy,
                     interrupt_trial, is_orphan, lost_trial_message, recover_orphans)
from .samplers import counts_as_visit, trial_params, trial_rng
from .searchers import BaseSearcher
from .space import Decision, SearchSpace

ROLE_KEYS = ('sh_bracket', 'sh_rung', 'sh_budget', 'sh_candidate')
SCHEDULE_ATTR = 'sh_schedule'
ELIMINATED_ATTR = 'sh_eliminated'
PROBABILITIES_ATTR = 'sh_probabilities'
#: Kinds of decisions whose choices count as operations (see :func:`decision_kind`).
OPERATION_KINDS = ('transform', 'distance', 'weight', 'tau', 'student', 'cfg')


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


# --- operations and their probabilities -------------------------------------------------------
def decision_kind(decision: Decision) -> str:
    """``'transform'``, ``'distance'``, ``'weight'``, ``'tau'``, ``'student'`` or ``'cfg'``."""
    if decision.kind in ('transform', 'distance'):
        return decision.kind
    if decision.target[0] == 'term':
        return decision.target[2]
    return decision.target[0]


def operation_key(decision: Decision, label: Any) -> str:
    """The operation a choice stands for. A transform is one operation in all slots of its
    term (``'kd0.transform:tanh'``); other choices are per decision (``'kd0.tau:4.0'``)."""
    if decision.kind == 'transform':
        return f'{decision.name.rsplit(".", 1)[0]}.transform:{label}'
    return f'{decision.name}:{label}'


def prior_weights(space: SearchSpace,
                  probabilities: Optional[Dict[str, Any]] = None) -> Dict[str, List[float]]:
    """Initial sampling weights per decision: uniform, or ``probabilities[name]`` as a list
    (one weight per choice, in order) or a dict ``{choice label: weight}`` (missing choices
    weigh 1)."""
    probabilities = dict(probabilities or {})
    unknown = sorted(set(probabilities) - set(space.names))
    if unknown:
        raise KeyError(f'successive halving: probabilities for unknown decisions {unknown}; '
                       f'the space has {space.names}')
    out = {}
    for d in space.decisions:
        weights = [1.0] * len(d.labels)
        spec = probabilities.get(d.name)
        if isinstance(spec, (list, tuple)):
            if len(spec) != len(d.labels):
                raise ValueError(f'successive halving: probabilities[{d.name!r}] has '
                                 f'{len(spec)} values for the {len(d.labels)} choices '
                                 f'{d.labels}')
            weights = [float(w) for w in spec]
        elif isinstance(spec, dict):
            for key, value in spec.items():
                matches = [i for i, label in enumerate(d.labels)
                           if label == key or str(label) == str(key)]
                if not matches:
                    raise KeyError(f'successive halving: probabilities[{d.name!r}] names '
                                   f'{key!r}, not a choice of {d.labels}')
                weights[matches[0]] = float(value)
        elif spec is not None:
            raise TypeError(f'successive halving: probabilities[{d.name!r}] must be a list '
                            f'or a dict, got {spec!r}')
        if any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
            raise ValueError(f'successive halving: probabilities[{d.name!r}] = {weights} must '
                             f'be finite, >= 0, and not all 0')
        out[d.name] = weights
    return out


def role_of(trial: FrozenTrial) -> Optional[Dict[str, int]]:
    """The rung role of a trial (``None`` until all of it is stored: another worker may be
    writing it one attribute at a time)."""
    attrs = trial.user_attrs
    if any(k not in attrs for k in ROLE_KEYS):
        return None
    return {k: int(attrs[k]) for k in ROLE_KEYS}


def is_suppressed(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and 'suppressed' in trial.user_attrs


def operation_weights(space: SearchSpace, trials: Sequence[FrozenTrial],
                      priors: Dict[str, List[float]], suppression_factor: float = 0.5,
                      poor_factor: float = 1.0, eliminated: Sequence[int] = (),
                      demote: Sequence[str] = ('transform', 'distance', 'weight', 'tau')
                      ) -> Dict[str, List[float]]:
    """Sampling weights per decision: the prior x ``suppression_factor`` per suppressed
    candidate that used the operation x ``poor_factor`` per eliminated one. The identity
    transform ``'no'`` is not an operation and keeps its weight."""
    by_candidate = {}
    for t in trials:
        role = role_of(t)
        if role is not None and t.params:
            by_candidate.setdefault(role['sh_candidate'], t.params)
    suppressed, poor = Counter(), Counter()
    demote = set(demote)

    def count(params, counter):
        for d in space.decisions:
            if d.name in params and decision_kind(d) in demote and params[d.name] != 'no':
                counter[operation_key(d, params[d.name])] += 1

    for t in trials:
        if is_suppressed(t) and t.params:
            count(t.params, suppressed)
    for candidate in set(eliminated):
        if candidate in by_candidate:
            count(by_candidate[candidate], poor)
    out = {}
    for d in space.decisions:
        out[d.name] = [w * suppression_factor ** suppressed[operation_key(d, label)]
                       * poor_factor ** poor[operation_key(d, label)]
                       for w, label in zip(priors[d.name], d.labels)]
    return out


def normalised(weights: Dict[str, List[float]], space: SearchSpace) -> Dict[str, Dict]:
    """``{decision: {str(label): probability}}`` (over all choices of the decision)."""
    out = {}
    for d in space.decisions:
        total = sum(weights[d.name]) or 1.0
        out[d.name] = {str(label): round(w / total, 6)
                       for label, w in zip(d.labels, weights[d.name])}
    return out


def sample_path(space: SearchSpace, weights: Dict[str, List[float]], rng,
                fixed: Optional[Dict[str, Any]] = None, avoid=(),
                max_draws: int = 100) -> Tuple[int, ...]:
    """Choice indices drawn decision by decision with ``weights``, among the choices that
    keep a valid distiller; ``fixed`` (enqueued) parameters are respected. Draws again (up
    to ``max_draws`` times) while the path is in ``avoid``."""
    fixed = fixed or {}
    path: Tuple[int, ...] = ()
    for _ in range(max_draws):
        state, chosen = None, []
        for depth, d in enumerate(space.decisions):
            options = space.valid_choices(depth, state)
            if d.name in fixed:
                wanted = d.index(fixed[d.name])
                options = [o for o in options if o[0] == wanted] or [
                    (wanted, d.step(state, wanted))]
            if not options:  # an invalid fixed prefix: the loop prunes the result
                options = [(i, d.step(state, i)) for i in range(len(d.labels))]
            w = [weights[d.name][i] for i, _ in options]
            if sum(w) <= 0:
                w = [1.0] * len(options)
            index, state = rng.choices(options, weights=w)[0]
            chosen.append(index)
        path = tuple(chosen)
        if path not in avoid or all(d.name in fixed for d in space.decisions):
            return path
    return path


class OperationSampler(BaseSampler):
    """Samples whole distillers with per-operation probabilities (``weights_fn(study)``,
    rebuilt from the stored trials at every sample), valid ones only, avoiding the
    parameters of earlier trials when it can."""

    def __init__(self, space: SearchSpace, weights_fn: Callable[[Study], Dict],
                 seed: Optional[int] = None, max_draws: int = 100):
        self.space = space
        self.weights_fn = weights_fn
        self.seed = seed
        self.max_draws = max_draws
        self._fallback = RandomSampler(seed=seed)

    def infer_relative_search_space(self, study: Study,
                                    trial: FrozenTrial) -> Dict[str, BaseDistribution]:
        return self.space.distributions()

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: Dict[str, BaseDistribution]) -> Dict[str, Any]:
        if not search_space:
            return {}
        fixed = trial.system_attrs.get('fixed_params') or {}
        avoid = set()
        if not all(d.name in fixed for d in self.space.decisions):
            avoid = {self.space.path_of(trial_params(t))
                     for t in study.get_trials(deepcopy=False)
                     if counts_as_visit(t) and t.number != trial.number}
        path = sample_path(self.space, self.weights_fn(study),
                           trial_rng(self.seed, trial.number), fixed, avoid, self.max_draws)
        return {k: v for k, v in self.space.labels_of(path).items() if k in search_space}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)


# --- one rung of one candidate ----------------------------------------------------------------
def rung_config(runner, params: Dict[str, Any], budget: int, max_budget: int) -> Config:
    """The trial config of a rung: the proxy config with ``params``, its epoch-based
    schedules stretched to ``max_budget`` (so that every rung trains a prefix of the same
    schedule and a resumed run continues it; a missing ``end`` becomes ``max_budget``),
    ``train_cfg.max_epochs = budget``, a checkpoint at the end of the rung, and a
    :class:`~kdzoo.engine.LossSuppressionHook` (with its defaults unless
    ``search.proxy.suppression`` configured one)."""
    cfg = runner.make_config(params)
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_epochs' not in train_cfg or not train_cfg.get('by_epoch', True):
        raise ValueError('successive halving budgets are epochs: the config needs an '
                         'epoch-based train_cfg with max_epochs')
    cfg = apply_proxy(cfg, dict(max_epochs=int(max_budget)))
    # MMEngine ends an epoch-based scheduler without ``end`` at the run's max_epochs, and a
    # resumed run restores that ``end``: fix it to the last rung's budget.
    schedulers = cfg.get('param_scheduler') or []
    for sched in schedulers if isinstance(schedulers, (list, tuple)) else [schedulers]:
        if sched.get('by_epoch', True) and 'end' not in sched:
            sched['end'] = int(max_budget)
    options = {'train_cfg.max_epochs': int(budget)}
    if 'checkpoint' in (cfg.get('default_hooks') or {}):
        options['default_hooks.checkpoint.save_last'] = True
    cfg.merge_from_dict(options)
    if not any(h.get('type') == 'LossSuppressionHook' for h in cfg.get('custom_hooks') or []):
        add_custom_hook(cfg, dict(type='LossSuppressionHook'))
    return cfg


def evaluate_rung(evaluate, candidate: int, params: Dict[str, Any], budget: int,
                  max_budget: int, resume: bool = False,
                  heartbeat: Callable[[], None] = lambda: None, rung: int = 0) -> TrialResult:
    """Train ``candidate`` up to ``budget`` epochs (``resume``: from its last checkpoint).

    ``evaluate`` is a :class:`~kdzoo.search.TrialRunner` (the candidate's work dir is
    ``trials/<candidate>``; rung 0 logs to ``train.log``, rung r to ``train_rung<r>.log``)
    or any ``evaluate(candidate, params, heartbeat, budget=..., resume=...)`` function.
    """
    if not (hasattr(evaluate, 'make_config') and hasattr(evaluate, 'train')):
        return evaluate(candidate, params, heartbeat, budget=budget, resume=resume)
    runner = evaluate
    trial_dir = runner.trial_dir(candidate)
    cfg = rung_config(runner, params, budget, max_budget)
    comment = (runner.describe(candidate, params)
               + f'\nsuccessive halving: rung {rung}, {budget} of {max_budget} epochs'
               + (' (resumed from the previous rung)' if resume else ''))
    path = runner.write_config(cfg, osp.join(trial_dir, 'config.py'), comment)
    attrs = dict(config=path)
    if runner.count_params:
        try:
            attrs['param_count'] = runner.student_param_count(cfg)
        except Exception as err:
            attrs['param_count_error'] = repr(err)[:500]
    log_name = 'train.log' if rung == 0 else f'train_rung{rung}.log'
    try:
        result = runner.train(path, trial_dir, heartbeat, resume=resume, log_name=log_name)
    finally:  # MMEngine dumps its own config over this file
        runner.write_config(cfg, path, comment)
    result.attrs = {**attrs, **result.attrs}
    return result


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
        unknown = sorted(set(demote) - set(OPERATION_KINDS))
        if unknown:
            raise ValueError(f'successive halving: demote has unknown kinds {unknown}; '
                             f'valid: {OPERATION_KINDS}')
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
        self._space: Optional[SearchSpace] = None
        self._priors: Optional[Dict[str, List[float]]] = None
        self._runner = None
        self._drop = False

    # --- sampling ---
    def _use_space(self, space: SearchSpace) -> None:
        if self._space is not space:
            self._space = space
            self._priors = prior_weights(space, self.probabilities)

    def sampler(self, space: SearchSpace) -> BaseSampler:
        self._use_space(space)
        return OperationSampler(space, self.weights, seed=self.seed)

    def weights(self, study: Study) -> Dict[str, List[float]]:
        """The current sampling weights, from the study's trials."""
        return operation_weights(self._space, study.get_trials(deepcopy=False), self._priors,
                                 self.suppression_factor, self.poor_factor,
                                 study.user_attrs.get(ELIMINATED_ATTR, []), self.demote)

    def probabilities_of(self, study: Study) -> Dict[str, Dict[str, float]]:
        return normalised(self.weights(study), self._space)

    # --- results ---
    def best_trial(self, study: Study) -> Optional[FrozenTrial]:
        """The best metric among the trials of the largest budget reached."""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            return None
        sign = 1 if study.directions[0] == StudyDirection.MAXIMIZE else -1
        return max(complete, key=lambda t: (t.user_attrs.get('sh_budget', 0),
                                            sign * t.values[0], -t.number))

    # --- the rung loop ---
    def search(self, loop) -> None:
        study, space = loop.study, loop.space
        self._use_space(space)
        n0 = int(self.n_candidates or loop.n_trials)
        max_budget = self.max_budget
        if max_budget is None:
            cfg = getattr(loop.evaluate, 'cfg', None)
            max_budget = (cfg.get('train_cfg') or {}).get('max_epochs') if cfg else None
            if max_budget is None:
                raise ValueError('successive halving: set search.searcher.max_budget (epochs)')
        schedule = rung_schedule(n0, self.eta, self.min_budget, int(max_budget))
        record = [list(rung) for rung in schedule]
        stored = study.user_attrs.get(SCHEDULE_ATTR)
        if stored is not None and [list(r) for r in stored] != record:
            raise ValueError(f'study {study.study_name!r} was searched with the rungs '
                             f'{stored} ([candidates, epochs]); this run has {record}. Use '
                             f'another --study-name or --work-dir for a new schedule')
        study.set_user_attr(SCHEDULE_ATTR, record)
        self._check_running(study, loop.stale_after)
        self.max_budget_ = int(max_budget)
        self.schedule_ = schedule
        self.n0_ = n0
        evaluate = loop.evaluate
        drop_checkpoints = getattr(evaluate, 'keep_checkpoints', True) is False
        if drop_checkpoints:  # survivors resume from them; deleted once a candidate is done
            evaluate.keep_checkpoints = True
        rungs = ', '.join(f'{n} x {b} epoch{"s" if b > 1 else ""}' for n, b in schedule)
        loop.log(f'[search] successive halving: {self.brackets} bracket(s) of rungs {rungs} '
                 f'(eta {self.eta:g})')
        self._drop = drop_checkpoints
        self._runner = evaluate
        waiting_for = None
        try:
            self._drain(loop)
            rejects = 0
            while True:
                plan = self._plan(study)
                if plan is None:
                    break
                if plan['kind'] == 'stop':
                    loop.stop_reason = plan['reason']
                    break
                if plan['kind'] == 'wait':
                    if self._queued(study):  # e.g. a retry that another worker enqueued
                        self._run(loop, study.ask(space.distributions()))
                        continue
                    recovered = recover_orphans(study, loop.stale_after)
                    if recovered:
                        loop.log(f'[search] trials {recovered} had no live worker; marked '
                                 f'FAILED and re-enqueued')
                    elif plan['reason'] != waiting_for:
                        loop.log(f'[search] waiting: {plan["reason"]}')
                    waiting_for = plan['reason']
                    time.sleep(self.poll_interval)
                    continue
                waiting_for = None
                if plan['kind'] == 'promote':
                    role = {k: plan[k] for k in ROLE_KEYS}
                    study.enqueue_trial(dict(plan['params']), user_attrs=role)
                trial = study.ask(space.distributions())
                try:
                    outcome = self._run(loop, trial, plan)
                except UpdateFinishedTrialError:
                    loop.log(lost_trial_message(trial.number))
                    outcome = 'rejected'
                rejects = rejects + 1 if outcome == 'rejected' else 0
                if rejects >= loop.max_rejects:
                    loop.stop_reason = (f'{rejects} proposals in a row were invalid or '
                                        f'duplicates')
                    break
        finally:
            if drop_checkpoints:
                evaluate.keep_checkpoints = False
        if not loop.stop_reason:
            loop.stop_reason = f'{self.brackets} bracket(s) of successive halving done'
        if drop_checkpoints:
            self._drop_checkpoints(study, everything=True)
        study.set_user_attr(PROBABILITIES_ATTR, self.probabilities_of(study))
        best = self.best_trial(study)
        best_text = (f'best {best.values[0]:.4f} (trial {best.number}, '
                     f'{best.user_attrs.get("sh_budget")} epochs)' if best else 'best -')
        loop.log(f'[search] stopped: {loop.stop_reason}; {best_text}')

    def _check_running(self, study: Study, stale_after: float) -> None:
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if is_orphan(t, stale_after):
                raise RuntimeError(f'trial {t.number} was left RUNNING by a stopped worker; '
                                   f'run the search again with --resume to retry it')

    @staticmethod
    def _queued(study: Study) -> bool:
        return any(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False))

    def _drain(self, loop) -> None:
        """Run the trials that wait in the queue first: retries of interrupted rungs
        (``--resume``) and the warm-start points of ``search.enqueue``."""
        study = loop.study
        while self._queued(study):
            self._run(loop, study.ask(loop.space.distributions()))

    def _groups(self, study: Study):
        """All trials, and the trials of each ``(bracket, rung)`` that count (trained,
        training or failed; not pruned, queued or interrupted)."""
        trials = study.get_trials(deepcopy=False)
        groups = defaultdict(list)
        for t in trials:
            role = role_of(t)
            if role is not None and counts_as_visit(t) and t.state != TrialState.WAITING:
                groups[(role['sh_bracket'], role['sh_rung'])].append(t)
        return trials, groups

    def _plan(self, study: Study) -> Optional[dict]:
        """The next evaluation, from the stored trials: ``sample`` a rung-0 candidate,
        ``promote`` a survivor to the next rung, ``wait`` for the rung that other workers
        are still training, ``stop``, or ``None`` when done."""
        trials, groups = self._groups(study)
        queued = {(r['sh_bracket'], r['sh_rung'], r['sh_candidate'])
                  for r in map(role_of, (t for t in trials if t.state == TrialState.WAITING))
                  if r is not None}
        eliminated = set(study.user_attrs.get(ELIMINATED_ATTR, []))
        sign = 1 if study.directions[0] == StudyDirection.MAXIMIZE else -1
        max_refills = self.n0_ if self.max_refills is None else int(self.max_refills)
        for bracket in range(self.brackets):
            for rung, (n_keep, budget) in enumerate(self.schedule_):
                done = groups[(bracket, rung)]
                if rung == 0:
                    complete = [t for t in done if t.state == TrialState.COMPLETE]
                    running = [t for t in done if t.state == TrialState.RUNNING]
                    more = len(done) < self.n0_ or (
                        self.refill and len(complete) + len(running) < self.n0_
                        and len(done) < self.n0_ + max_refills)
                    if more:
                        if self._exhausted(trials):
                            if not complete and not running:
                                return dict(kind='stop', reason=f'all {len(self._space)} '
                                            f'valid distillers of the space were tried')
                        else:
                            return dict(kind='sample', sh_bracket=bracket, sh_rung=0,
                                        sh_budget=budget)
                    continue
                before = groups[(bracket, rung - 1)]
                pending = [t.number for t in before if t.state == TrialState.RUNNING]
                if pending:  # the ranking needs them: other workers train them
                    return dict(kind='wait', reason=f'bracket {bracket} rung {rung - 1} '
                                f'trials {pending} are still training')
                previous = [t for t in before if t.state == TrialState.COMPLETE]
                if len(previous) <= 1:
                    break  # one candidate (or none) left: this bracket is done
                ranked = sorted(previous, key=lambda t: (-sign * t.values[0], t.number))
                drop = {t.user_attrs['sh_candidate'] for t in ranked[n_keep:]}
                if not drop <= eliminated:
                    eliminated |= drop
                    study.set_user_attr(ELIMINATED_ATTR, sorted(eliminated))
                    if self._drop:
                        self._drop_checkpoints(study, candidates=drop)
                evaluated = {t.user_attrs['sh_candidate'] for t in done}
                for t in ranked[:n_keep]:
                    candidate = t.user_attrs['sh_candidate']
                    if candidate not in evaluated and (bracket, rung, candidate) not in queued:
                        return dict(kind='promote', sh_bracket=bracket, sh_rung=rung,
                                    sh_budget=budget, sh_candidate=candidate,
                                    params=dict(t.params))
        return None

    def _exhausted(self, trials) -> bool:
        tried = {self._space.path_of(trial_params(t)) for t in trials if counts_as_visit(t)}
        tried.discard(None)
        return len(tried) >= len(self._space)

    def _role(self, study: Study, trial,
              planned: Optional[dict] = None) -> Tuple[Dict[str, int], bool]:
        """The trial's rung role and whether it resumes a checkpoint (``planned``: the
        plan this worker asked the trial for)."""
        attrs = trial.user_attrs
        if 'sh_rung' in attrs:  # a promotion
            return {k: int(attrs[k]) for k in ROLE_KEYS}, int(attrs['sh_rung']) > 0
        if 'retry_of' in attrs:  # the retry of an interrupted rung continues its candidate
            original = study.get_trials(deepcopy=False)[int(attrs['retry_of'])]
            role = role_of(original)
            if role is not None:
                return role, True
        # a new candidate (or a warm start of search.enqueue)
        plan = planned if planned and planned['kind'] == 'sample' else self._plan(study)
        bracket = plan['sh_bracket'] if plan and plan['kind'] == 'sample' else 0
        return dict(sh_bracket=bracket, sh_rung=0, sh_budget=self.schedule_[0][1],
                    sh_candidate=trial.number), False

    def _claimed_by_another(self, study: Study, trial, role: Dict[str, int],
                            resume: bool) -> Optional[str]:
        """Why this trial repeats what a concurrent worker took first (the lower trial
        number wins), or ``None``: a promotion of the same candidate to the same rung, or a
        rung-0 sample beyond the rung's candidates."""
        same_rung = []  # (trial, role) of the earlier trials of this bracket and rung
        for t in study.get_trials(deepcopy=False):
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
        if len(same_rung) >= self.n0_ and not (self.refill and len(live) < self.n0_):
            return f'rung 0 of bracket {role["sh_bracket"]} already has its candidates'
        return None

    def _run(self, loop, trial, planned: Optional[dict] = None) -> str:
        """Evaluate one rung trial; returns ``'complete'``, ``'failed'``, ``'suppressed'``
        or ``'rejected'``."""
        study, space = loop.study, loop.space
        role, resume = self._role(study, trial, planned)
        for key, value in role.items():
            trial.set_user_attr(key, value)
        study._storage.set_trial_system_attr(trial._trial_id, WORKER_KEY, loop.worker)
        params = dict(trial.params)
        candidate, rung = role['sh_candidate'], role['sh_rung']
        reason = space.check(params) or self._claimed_by_another(study, trial, role, resume)
        if reason is None and rung == 0 and not resume:
            path = space.path_of(params)
            others = [t.number for t in study.get_trials(deepcopy=False)
                      if t.number < trial.number and counts_as_visit(t)
                      and space.path_of(trial_params(t)) == path]
            reason = f'duplicate of trial {others[0]}' if others else None
        if reason is not None:
            trial.set_user_attr('pruned_reason', reason)
            study.tell(trial, state=TrialState.PRUNED)
            loop.log(f'[search] trial {trial.number} PRUNED ({reason})')
            return 'rejected'
        if rung == 0 and not resume:
            probs = self.probabilities_of(study)
            trial.set_user_attr('sh_sampled_with', {
                d.name: probs[d.name][str(params[d.name])] for d in space.decisions})

        def heartbeat():
            try:
                study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_KEY,
                                                     time.time())
            except Exception:
                pass

        budget = role['sh_budget']
        head = (f'[search] trial {trial.number} (bracket {role["sh_bracket"]}, rung {rung}, '
                f'{budget} epoch{"s" if budget > 1 else ""}, candidate {candidate}'
                f'{", resumed" if resume else ""})')
        start = time.time()
        try:
            result = evaluate_rung(loop.evaluate, candidate, params, budget, self.max_budget_,
                                   resume, heartbeat, rung)
        except (KeyboardInterrupt, SystemExit):
            interrupt_trial(study, trial._trial_id, trial.number, params,
                            'interrupted: the search worker was stopped; retried')
            loop.log(f'[search] trial {trial.number} interrupted; it will be retried')
            raise
        except Exception:
            result = TrialResult(error=traceback.format_exc(limit=5))
        duration = time.time() - start
        for key, value in result.attrs.items():
            trial.set_user_attr(key, value)
        trial.set_user_attr('duration_s', round(duration, 3))
        choice = ' '.join(f'{k}={v}' for k, v in params.items())
        if result.error is not None:
            trial.set_user_attr('error', result.error[-4000:])
            study.tell(trial, state=TrialState.FAIL)
            outcome = 'suppressed' if 'suppressed' in result.attrs else 'failed'
            first = result.error.strip().splitlines()[0] if result.error.strip() else ''
            loop.log(f'{head} {"SUPPRESSED" if outcome == "suppressed" else "FAIL"} in '
                     f'{duration:.1f}s: {first} | {choice}')
            if self._drop:
                self._drop_checkpoints(study, candidates={candidate})
        else:
            study.tell(trial, result.value)
            outcome = 'complete'
            early = result.attrs.get('early_stopped')
            note = f' (early stop: {early.get("reason")})' if early else ''
            loop.log(f'{head} COMPLETE {loop.metric}={result.value:.4f}{note} in '
                     f'{duration:.1f}s | {choice}')
        study.set_user_attr(PROBABILITIES_ATTR, self.probabilities_of(study))
        if loop.on_trial_end is not None:
            loop.on_trial_end(study)
        return outcome

    def _drop_checkpoints(self, study: Study, candidates=(), everything=False):
        """Delete the ``*.pth`` of finished candidates (``keep_checkpoints=False``)."""
        runner = self._runner
        if not hasattr(runner, 'trial_dir'):
            return
        if everything:
            candidates = {t.user_attrs['sh_candidate'] for t in study.get_trials(deepcopy=False)
                          if 'sh_candidate' in t.user_attrs}
        for candidate in candidates:
            for path in glob.glob(osp.join(runner.trial_dir(candidate), '*.pth')):
                os.remove(path)

    # --- report ---
    def plots(self, study: Study, space: SearchSpace, work_dir: str, metric: str) -> None:
        """Adds the rung columns to ``results.csv`` / ``results.md`` and writes
        ``successive_halving.json`` and ``halving.png``."""
        from .report import _atomic_write, result_rows, write_tables
        summary = rung_summary(study)
        outcome = {row['trial']: row['outcome'] for rung in summary for row in rung['trials']}
        rows = []
        trials = study.get_trials(deepcopy=False)
        for row in result_rows(study, space, metric):
            t = trials[row['trial']]
            role = role_of(t) or {}
            new = {}
            for key, value in row.items():
                new[key] = value
                if key == 'state':
                    new['bracket'] = role.get('sh_bracket', '')
                    new['rung'] = role.get('sh_rung', '')
                    new['budget'] = role.get('sh_budget', '')
                    new['candidate'] = role.get('sh_candidate', '')
                    new['outcome'] = outcome.get(t.number, '')
            rows.append(new)
        best = self.best_trial(study)
        write_tables(rows, work_dir, best.number if best is not None else None)
        data = dict(schedule=study.user_attrs.get(SCHEDULE_ATTR),
                    probabilities=study.user_attrs.get(PROBABILITIES_ATTR),
                    eliminated=study.user_attrs.get(ELIMINATED_ATTR, []), rungs=summary,
                    best_trial=best.number if best is not None else None)
        _atomic_write(osp.join(work_dir, 'successive_halving.json'),
                      json.dumps(data, indent=1, default=str) + '\n')
        plot_halving(study, summary, osp.join(work_dir, 'halving.png'), metric)


def rung_summary(study: Study) -> List[dict]:
    """Per bracket and rung: the budget and each trial's candidate, state, value and
    outcome (``promoted``, ``eliminated``, ``complete``, ``suppressed``, ``failed``,
    ``running``, ``waiting``, ``interrupted``)."""
    trials = study.get_trials(deepcopy=False)
    eliminated = set(study.user_attrs.get(ELIMINATED_ATTR, []))
    seen = defaultdict(set)
    for t in trials:
        role = role_of(t)
        if role is not None and counts_as_visit(t):
            seen[(role['sh_bracket'], role['sh_candidate'])].add(role['sh_rung'])
    groups = defaultdict(list)
    for t in trials:
        role = role_of(t)
        if role is None:
            continue
        if not counts_as_visit(t):
            outcome = 'interrupted' if t.state == TrialState.FAIL else 'pruned'
        elif t.state == TrialState.COMPLETE:
            later = any(r > role['sh_rung']
                        for r in seen[(role['sh_bracket'], role['sh_candidate'])])
            outcome = ('promoted' if later else
                       'eliminated' if role['sh_candidate'] in eliminated else 'complete')
        elif is_suppressed(t):
            outcome = 'suppressed'
        else:
            outcome = t.state.name.lower().replace('fail', 'failed')
        groups[(role['sh_bracket'], role['sh_rung'])].append(dict(
            trial=t.number, candidate=role['sh_candidate'], state=t.state.name,
            value=t.values[0] if t.state == TrialState.COMPLETE else None, outcome=outcome,
            reason=(t.user_attrs.get('suppressed') or {}).get('reason')))
    out = []
    for (bracket, rung), rows in sorted(groups.items()):
        budget = next((trials[r['trial']].user_attrs['sh_budget'] for r in rows), None)
        out.append(dict(bracket=bracket, rung=rung, budget=budget, trials=rows))
    return out


def plot_halving(study: Study, summary: List[dict], path: str, metric: str) -> None:
    """The metric of each candidate against its budget (one line per candidate);
    suppressed / failed evaluations as red x at the bottom."""
    from .report import _pyplot
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    lines = defaultdict(list)
    failed = []
    budgets = set()
    for rung in summary:
        budgets.add(rung['budget'])
        for row in rung['trials']:
            if row['value'] is not None:
                lines[(rung['bracket'], row['candidate'])].append((rung['budget'], row['value']))
            elif row['outcome'] in ('suppressed', 'failed'):
                failed.append(rung['budget'])
    for (bracket, candidate), points in sorted(lines.items()):
        points.sort()
        ax.plot(*zip(*points), marker='o', ms=4, lw=1, alpha=0.8)
        ax.annotate(str(candidate), points[-1], fontsize=6, xytext=(3, 0),
                    textcoords='offset points')
    if failed:
        ax.scatter(failed, [0.03] * len(failed), marker='x', color='tab:red',
                   label='suppressed / failed', zorder=3, transform=ax.get_xaxis_transform())
        ax.legend(loc='best')
    budgets.discard(None)
    if budgets:
        ax.set_xticks(sorted(budgets))
    ax.set_xlabel('budget (epochs)')
    ax.set_ylabel(metric)
    ax.set_title(f'successive halving ({study.study_name}); labels: candidate')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ['SuccessiveHalvingSearcher', 'OperationSampler', 'rung_schedule', 'rung_config',
           'evaluate_rung', 'operation_weights', 'prior_weights', 'sample_path',
           'rung_summary', 'operation_key', 'decision_kind']
