"""Searchers: what a config's ``search.searcher`` names (registered in ``SEARCHERS``).

A searcher decides the study's objectives, builds its Optuna sampler and plans the rounds
of the one search loop (:class:`kdzoo.search.loop.SearchLoop`) through the small interface
of :class:`BaseSearcher` (``begin`` / ``plan`` / ``assign`` / ``told`` / ``end``).

==========  =============================================================================
``random``  Optuna's RandomSampler, seeded per trial.
``grid``    Optuna's BruteForceSampler: every combination once (small spaces).
``mcts``    Auto-KD's Monte Carlo tree search (:class:`~kdzoo.search.samplers.MCTSSampler`).
``nsga2``   UniADS: Optuna's NSGAIISampler on two objectives, the metric and the student's
            parameter count (minimised), with ``param_budget`` as a constraint.
``tpe``     Optuna's TPESampler (multivariate): the generic baseline, not a paper's method.
==========  =============================================================================

``successive_halving`` (UniADS' rungs with loss suppression) is
:class:`kdzoo.search.halving.SuccessiveHalvingSearcher`; it plans rungs instead of single
trials.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import optuna
from optuna.samplers import BaseSampler, BruteForceSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from kdzoo.registry import SEARCHERS
from .protocol import Job, Plan, Reject, SearchState, TrialResult
from .samplers import MCTSSampler, SeededNSGAIISampler, SeededRandomSampler, SeededTPESampler
from .space import SearchSpace
from .trials import budget_trials, params_key, trial_params


class BaseSearcher:
    """A searcher: its objectives, its Optuna sampler, and what the loop should do next.

    The loop (:class:`~kdzoo.search.loop.SearchLoop`) calls, in order: :meth:`begin` once,
    then per round :meth:`plan`, :meth:`assign` for the asked trial and :meth:`told` after
    it was told; :meth:`end` once. ``plan`` and ``assign`` decide from a read-only
    :class:`~kdzoo.search.protocol.SearchState`; the loop does all the writing. The default
    plan asks until ``n_trials`` trials (study-wide) are used or every valid distiller was
    tried; subclasses implement :meth:`sampler`.
    """

    #: names of the objectives after the metric (e.g. ``['param_count']``)
    extra_objectives: Sequence[str] = ()
    #: let the loop train parameters that an earlier trial already had
    allow_duplicates: bool = False

    def __init__(self, seed: Optional[int] = 0):
        self.seed = seed
        self.space: Optional[SearchSpace] = None

    def directions(self, direction: str) -> List[str]:
        return [direction] + ['minimize'] * len(self.extra_objectives)

    def sampler(self, space: SearchSpace) -> BaseSampler:
        raise NotImplementedError  # abstract

    # --- the loop's interface ---
    def begin(self, space: SearchSpace, state: SearchState, max_epochs: Optional[int] = None,
              stale_after: float = 600.0) -> Plan:
        """Called once before the first round; the returned plan's ``records`` are stored
        and its ``reason`` (if any) is logged."""
        self.space = space
        return Plan()

    def plan(self, state: SearchState) -> Plan:
        """What to do next."""
        used = len(budget_trials(state.trials))
        waiting = any(t.state == TrialState.WAITING for t in state.trials)
        if used >= state.n_trials and not waiting:
            return Plan('stop', f'{used} of {state.n_trials} trials used')
        if not self.allow_duplicates and space_exhausted(self.space, state.trials):
            return Plan('stop', f'all {len(self.space)} valid distillers of the space were '
                        f'tried')
        return Plan()

    def assign(self, trial: FrozenTrial, state: SearchState, plan: Plan) -> Union[Job, Reject]:
        """The job of an asked trial, or why it is not trained."""
        earlier = [t for t in budget_trials(state.trials) if t.number < trial.number]
        if len(earlier) >= state.n_trials:
            return Reject('budget already used by other workers', stop=True)
        params = dict(trial.params)
        reason = self.space.check(params)
        if reason is None and not self.allow_duplicates:
            key = params_key(params)
            dup = [t.number for t in earlier if params_key(trial_params(t)) == key]
            reason = f'duplicate of trial {dup[0]}' if dup else None
        if reason is not None:
            return Reject(reason)
        label = f'trial {trial.number} ({len(earlier) + 1}/{state.n_trials})'
        if 'retry_of' in trial.user_attrs:
            label += f' [retry of trial {trial.user_attrs["retry_of"]}]'
        return Job(trial.number, params, label=label)

    def told(self, job: Job, result: TrialResult, state: SearchState) -> Plan:
        """After a trial was told: records to store, work dirs to release."""
        return Plan()

    def end(self, state: SearchState) -> Plan:
        """After the last round: records to store, work dirs to release."""
        return Plan()

    # --- results ---
    def values(self, metric: float, attrs: Dict) -> List[float]:
        """Objective values told to Optuna for a trial with ``metric`` and user ``attrs``."""
        return [metric] + [float(attrs[name]) for name in self.extra_objectives]

    def constrain(self, trial: optuna.Trial, attrs: Dict) -> None:
        """Set Optuna constraints (``trial.set_constraint``) before a trial is told."""

    def best_trial(self, study: Study) -> Optional[FrozenTrial]:
        """The trial whose config becomes ``best_config.py``."""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            return None
        if len(study.directions) == 1:
            return study.best_trial
        sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
        # the best metric among the feasible trials (all trials when none is feasible)
        pool = [t for t in complete if self.feasible(t)] or complete
        return max(pool, key=lambda t: sign * t.values[0])

    def feasible(self, trial: FrozenTrial) -> bool:
        return True

    def plots(self, study: Study, space: SearchSpace, work_dir: str, metric: str) -> None:
        """Searcher-specific plots written next to ``progress.png``."""


def space_exhausted(space: SearchSpace, trials: Sequence[FrozenTrial]) -> bool:
    """Whether the budget trials cover every valid distiller of ``space``."""
    tried = {space.path_of(trial_params(t)) for t in budget_trials(trials)}
    tried.discard(None)
    return len(tried) >= len(space)


@SEARCHERS.register_module(name='random')
class RandomSearcher(BaseSearcher):
    """Uniform random choices (invalid chains are rejected before training)."""

    def sampler(self, space: SearchSpace) -> BaseSampler:
        return SeededRandomSampler(seed=self.seed)


class _GridSampler(BruteForceSampler):
    """BruteForceSampler without its ``study.stop()`` (which only works inside
    ``study.optimize``); the search loop stops when the space is exhausted."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


@SEARCHERS.register_module(name='grid')
class GridSearcher(BaseSearcher):
    """Every combination of the space once, in random order."""

    def sampler(self, space: SearchSpace) -> BaseSampler:
        return _GridSampler(seed=self.seed)


@SEARCHERS.register_module(name='mcts')
class MCTSSearcher(BaseSearcher):
    """Auto-KD's Monte Carlo tree search; see :class:`~kdzoo.search.samplers.MCTSSampler`.

    Args:
        exploration: C of the UCB score.
        reward: ``'metric'`` (the metric normalised to [0, 1]) or ``'autokd'``.
        reward_range: fixed (low, high) of the metric for the normalisation.
        allow_repeats: let the tree re-select leaves that were already tried.
        rave_k: RAVE's equivalence parameter (0: off, Auto-KD's plain UCT); see
            :class:`~kdzoo.search.samplers.MCTSSampler`. The default, 10, was fixed on the
            tabular benchmark's development seeds (docs/search_benchmark.md).
    """

    def __init__(self, exploration: float = 0.5, reward: str = 'metric',
                 reward_range: Optional[Sequence[float]] = None, allow_repeats: bool = False,
                 rave_k: float = 10.0, seed: Optional[int] = 0):
        super().__init__(seed)
        self.kwargs = dict(exploration=exploration, reward=reward, reward_range=reward_range,
                           allow_repeats=allow_repeats, rave_k=rave_k)
        self.allow_duplicates = allow_repeats

    def sampler(self, space: SearchSpace) -> BaseSampler:
        return MCTSSampler(space, seed=self.seed, **self.kwargs)

    def plots(self, study: Study, space: SearchSpace, work_dir: str, metric: str) -> None:
        from .plots import plot_mcts_visits
        root = self.sampler(space).tree(study)
        plot_mcts_visits(space, root, osp.join(work_dir, 'mcts_visits.png'))


@SEARCHERS.register_module(name='tpe')
class TPESearcher(BaseSearcher):
    """Optuna's tree-structured Parzen estimator: the off-the-shelf Bayesian optimiser a
    user would otherwise pick; kdzoo ships it as the baseline its own searchers are
    measured against (docs/search_benchmark.md).

    Args:
        n_startup_trials: random trials before the density model is used.
        multivariate: model the decisions jointly (Optuna's ``multivariate=True``).
        n_ei_candidates: candidates scored per proposal.
    """

    def __init__(self, n_startup_trials: int = 10, multivariate: bool = True,
                 n_ei_candidates: int = 24, seed: Optional[int] = 0):
        super().__init__(seed)
        self.kwargs = dict(n_startup_trials=n_startup_trials, multivariate=multivariate,
                           n_ei_candidates=n_ei_candidates)

    def sampler(self, space: SearchSpace) -> BaseSampler:
        import warnings
        with warnings.catch_warnings():
            # multivariate TPE is flagged experimental by Optuna; it is the documented choice
            warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
            return SeededTPESampler(seed=self.seed, **self.kwargs)


#: First generations of ``nsga2``.
INITIAL_POPULATIONS = ('stratified', 'random')


@SEARCHERS.register_module(name='nsga2')
class NSGA2Searcher(BaseSearcher):
    """UniADS: NSGA-II on (metric, student parameter count) with a parameter budget.

    Args:
        population_size: NSGA-II's population.
        param_budget: the constraint ``param_count <= param_budget`` (``None``: none).
        mutation_prob, crossover_prob, swapping_prob: NSGA-II's operators (Optuna's
            defaults when ``None`` / unset).
        initial_population: ``'stratified'`` (default): the first generation covers every
            choice of every decision evenly (:func:`~kdzoo.search.samplers.stratified_point`);
            ``'random'``: Optuna's uniform draws.
    """

    extra_objectives = ('param_count',)

    def __init__(self, population_size: int = 16, param_budget: Optional[float] = None,
                 mutation_prob: Optional[float] = None, crossover_prob: float = 0.9,
                 swapping_prob: float = 0.5, initial_population: str = 'stratified',
                 seed: Optional[int] = 0):
        super().__init__(seed)
        if initial_population not in INITIAL_POPULATIONS:
            raise ValueError(f'nsga2 initial_population={initial_population!r}; valid: '
                             f'{INITIAL_POPULATIONS}')
        self.initial_population = initial_population
        self.population_size = population_size
        self.param_budget = param_budget
        self.operators = dict(mutation_prob=mutation_prob, crossover_prob=crossover_prob,
                              swapping_prob=swapping_prob)

    def violation(self, attrs: Dict) -> float:
        """``param_count - param_budget``; Optuna's convention: <= 0 is feasible."""
        count = attrs.get('param_count')
        if count is None:
            return 1.0
        return float(count) - float(self.param_budget)

    def constrain(self, trial: optuna.Trial, attrs: Dict) -> None:
        if self.param_budget is not None:
            trial.set_constraint('param_budget', self.violation(attrs))

    def feasible(self, trial: FrozenTrial) -> bool:
        return self.param_budget is None or self.violation(trial.user_attrs) <= 0

    def sampler(self, space: SearchSpace) -> BaseSampler:
        design = space if self.initial_population == 'stratified' else None
        return SeededNSGAIISampler(population_size=self.population_size, seed=self.seed,
                                   space=design, **self.operators)

    def plots(self, study: Study, space: SearchSpace, work_dir: str, metric: str) -> None:
        from .plots import plot_pareto
        plot_pareto(study, osp.join(work_dir, 'pareto.png'), metric, self.param_budget)


def build_searcher(cfg, seed: Optional[int] = 0) -> BaseSearcher:
    """Build a searcher from ``search.searcher`` (a name or a dict with ``type``)."""
    SEARCHERS.import_from_location()
    cfg = dict(type=cfg) if isinstance(cfg, str) else dict(cfg)
    cfg.setdefault('seed', seed)
    name = cfg.get('type')
    if SEARCHERS.get(name) is None:
        raise KeyError(f'unknown searcher {name!r}; valid: {sorted(SEARCHERS.module_dict)}')
    try:
        return SEARCHERS.build(cfg)
    except TypeError as err:
        raise TypeError(f'bad arguments for searcher {name!r}: {err}') from err
