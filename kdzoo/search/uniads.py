"""UniADS' combination (Lu et al., AAAI 2024): successive halving whose candidates come from
NSGA-II, on two objectives, the metric and the student's parameter count.

Every rung keeps its survivors by non-dominated sorting and crowding distance
(:func:`kdzoo.search.pareto.pareto_order`) instead of the metric alone, so a small student
that is nearly as good survives next to the best large one. The parameter budget ``C`` is
either a constraint (``budget_mode='constraint'``: ``param_count <= C``; infeasible
candidates rank after every feasible one, Deb's constrained domination, and NSGA-II is told
the violation) or the paper's penalty (``budget_mode='penalty'``: the second objective is
``|param_count - C|``). Rungs, resumption, loss suppression of failed candidates, several
workers: as :class:`~kdzoo.search.halving.SuccessiveHalvingSearcher`, whose rung-0 sampler
(the per-operation probabilities) NSGA-II replaces here.
"""
from typing import Dict, List, Optional, Sequence

import optuna
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from kdzoo.registry import SEARCHERS
from .halving import SuccessiveHalvingSearcher
from .pareto import pareto_order
from .protocol import SearchState
from .searchers import NSGA2Searcher
from .space import SearchSpace

BUDGET_MODES = ('constraint', 'penalty')


@SEARCHERS.register_module(name='uniads')
class UniADSSearcher(SuccessiveHalvingSearcher):
    """Multi-objective successive halving with NSGA-II candidates (see the module doc).

    Args:
        param_budget: ``C``, the student's parameter budget (``None``: no budget; the second
            objective is then the parameter count).
        budget_mode: ``'constraint'`` or ``'penalty'`` (needs ``param_budget``).
        population_size, initial_population: NSGA-II's (see ``nsga2``).
        **halving: :class:`~kdzoo.search.halving.SuccessiveHalvingSearcher`'s arguments
            (``n_candidates``, ``eta``, ``min_budget``, ``max_budget``, ``brackets``, ...).
    """

    extra_objectives = ('param_count',)

    def __init__(self, param_budget: Optional[float] = None, budget_mode: str = 'constraint',
                 population_size: int = 8, initial_population: str = 'stratified',
                 seed: Optional[int] = 0, **halving):
        super().__init__(seed=seed, **halving)
        if budget_mode not in BUDGET_MODES:
            raise ValueError(f'uniads budget_mode={budget_mode!r}; valid: {BUDGET_MODES}')
        if budget_mode == 'penalty' and param_budget is None:
            raise ValueError("uniads budget_mode='penalty' needs param_budget (the C of "
                             '|Params - C|)')
        self.param_budget = param_budget
        self.budget_mode = budget_mode
        self.nsga = NSGA2Searcher(
            population_size=population_size, initial_population=initial_population,
            param_budget=param_budget if budget_mode == 'constraint' else None, seed=seed)

    # --- objectives ---
    def values(self, metric: float, attrs: Dict) -> List[float]:
        count = float(attrs['param_count'])
        if self.budget_mode == 'penalty':
            return [metric, abs(count - float(self.param_budget))]
        return [metric, count]

    def constrain(self, trial: optuna.Trial, attrs: Dict) -> None:
        self.nsga.constrain(trial, attrs)

    def feasible(self, trial: FrozenTrial) -> bool:
        return self.nsga.feasible(trial)

    def rank(self, trials: Sequence[FrozenTrial], state: SearchState) -> List[FrozenTrial]:
        """A rung's completed trials, best first: Pareto fronts of (metric, second
        objective), crowding distance inside a front; infeasible last."""
        points = [(-state.sign * t.values[0], t.values[1]) for t in trials]
        violations = None
        if self.nsga.param_budget is not None:
            violations = [self.nsga.violation(t.user_attrs) for t in trials]
        return [trials[i] for i in pareto_order(points, violations)]

    # --- sampling and results ---
    def sampler(self, space: SearchSpace) -> BaseSampler:
        self._use_space(space)
        return self.nsga.sampler(space)

    def plots(self, study: Study, space: SearchSpace, work_dir: str, metric: str) -> None:
        super().plots(study, space, work_dir, metric)
        self.nsga.plots(study, space, work_dir, metric)


__all__ = ['UniADSSearcher', 'BUDGET_MODES']
