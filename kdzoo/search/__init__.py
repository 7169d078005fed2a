"""kdzoo's distiller search. ``tools/search.py CONFIG`` runs one; see docs/search.md and
the package map in docs/architecture.md.

==============  ===========================================================================
settings        the ``search`` dict: defaults, the objective, proxy / budget config rewrites
space           the ordered decisions and their validity
protocol        the interface between loop, searchers and evaluators (Plan, Job, ...)
trials          trial bookkeeping in the storage (workers, heartbeats, interruptions)
storage         Optuna storage and study
samplers        MCTS and per-trial seeded Optuna samplers
searchers       the searchers (random, grid, MCTS, NSGA-II) and their base class
operations      successive halving's per-operation sampling probabilities, rung roles
halving         successive halving: the rung planner and its searcher
pareto          non-dominated sorting and crowding distance
uniads          UniADS: multi-objective successive halving with NSGA-II candidates
loop            the one search loop
runner          trains a trial with tools/train.py in a child process
report, plots   results tables, plots, best configs
entry           prepare / run / report a search (tools/search.py, the tabular benchmark)
==============  ===========================================================================
"""
from .entry import (Search, build_search, load_search, prepare_search, run_search,
                    write_search_report)
from .halving import RungPlanner, SuccessiveHalvingSearcher, rung_schedule
from .uniads import UniADSSearcher
from .loop import SearchLoop
from .operations import OperationSampler
from .protocol import Job, Plan, Reject, SearchState, TrialResult
from .report import rung_summary, write_report
from .runner import TrialRunner
from .samplers import (MCTSSampler, SeededNSGAIISampler, SeededRandomSampler, build_tree,
                       select_path, ucb_score)
from .searchers import (BaseSearcher, GridSearcher, MCTSSearcher, NSGA2Searcher,
                        RandomSearcher, build_searcher)
from .settings import Objective, apply_proxy, budget_config, search_settings
from .space import Decision, SearchSpace
from .storage import open_storage, open_study
from .trials import TrialBook

__all__ = ['UniADSSearcher', 
    'Search', 'build_search', 'load_search', 'prepare_search', 'run_search', 'write_search_report',
    'SearchSpace', 'Decision', 'MCTSSampler', 'SeededRandomSampler', 'SeededNSGAIISampler',
    'build_tree', 'select_path', 'ucb_score', 'BaseSearcher', 'RandomSearcher',
    'GridSearcher', 'MCTSSearcher', 'NSGA2Searcher', 'build_searcher', 'SearchLoop',
    'TrialRunner', 'TrialResult', 'Job', 'Plan', 'Reject', 'SearchState', 'TrialBook',
    'Objective', 'apply_proxy', 'budget_config', 'open_storage', 'open_study',
    'search_settings', 'write_report', 'SuccessiveHalvingSearcher', 'RungPlanner',
    'OperationSampler', 'rung_schedule', 'rung_summary'
]
