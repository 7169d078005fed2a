"""Searchers: what a config's ``search.searcher`` names (registered in ``SEARCHERS``).

A searcher decides the study's objectives and builds its Optuna sampler; the search loop
(:class:`kdzoo.search.runner.SearchLoop`) is shared. A searcher that needs its own loop
(e.g. successive halving with rungs that resume survivors) overrides
:meth:`BaseSearcher.search`.

==========  =============================================================================
``random``  Optuna's RandomSampler, seeded per trial.
``grid``    Optuna's BruteForceSampler: every combination once (small spaces).
``mcts``    Auto-KD's Monte Carlo tree search (:class:`~kdzoo.search.samplers.MCTSSampler`).
``nsga2``   UniADS: Optuna's NSGAIISampler on two objectives, the metric and the student's
            parameter count (minimised), with ``param_budget`` as a constraint.
==========  =============================================================================

``successive_halving`` (UniADS' rung loop with loss suppression) is
:class:`kdzoo.search.halving.SuccessiveHalvingSearcher`.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import optuna
from optuna.samplers import BaseSampler, BruteForceSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from kdzoo.registry import SEARCHERS
from .samplers import MCTSSampler, SeededNSGAIISampler, SeededRandomSampler
from .space import SearchSpace


class BaseSearcher:
    """One objective (the metric) and a sampler; subclasses implement :meth:`sampler`."""

    #: names of the objectives after the metric (e.g. ``['param_count']``)
    extra_objectives: Sequence[str] = ()
    #: let the loop train parameters that an earlier trial already had
    allow_duplicates: bool = False

    def __init__(self, seed: Optional[int] = 0):
        self.seed = seed

    def directions(self, direction: str) -> List[str]:
        return [direction] + ['minimize'] * len(self.extra_objectives)

    def sampler(self, space: SearchSpace) -> BaseSampler:
        raise NotImplementedError  # abstract

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

    def search(self, loop) -> None:
        """Run the ask / evaluate / tell loop (``loop`` is a
        :class:`~kdzoo.search.runner.SearchLoop`)."""
        loop.run()


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
    """

    def __init__(self, exploration: float = 0.5, reward: str = 'metric',
                 reward_range: Optional[Sequence[float]] = None, allow_repeats: bool = False,
                 seed: Optional[int] = 0):
        super().__init__(seed)
        self.kwargs = dict(exploration=exploration, reward=reward, reward_range=reward_range,
                           allow_repeats=allow_repeats)
        self.allow_duplicates = allow_repeats

    def sampler(self, space: SearchSpace) -> BaseSampler:
        return MCTSSampler(space, seed=self.seed, **self.kwargs)

    def plots(self, study: Study, space: SearchSpace, work_dir: str, metric: str) -> None:
        from .report import plot_mcts_visits
        root = self.sampler(space).tree(study)
        plot_mcts_visits(space, root, osp.join(work_dir, 'mcts_visits.png'))


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
        from .report import plot_pareto
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
