"""kdzoo's distiller search: spaces, samplers (random, MCTS, NSGA-II), successive halving,
the trial runner and the report. ``tools/search.py CONFIG`` runs a search; see docs/search.md."""
from .halving import (OperationSampler, SuccessiveHalvingSearcher, rung_schedule,
                      rung_summary)
from .report import write_report
from .runner import (SearchLoop, TrialResult, TrialRunner, apply_proxy, open_storage,
                     open_study, recover_orphans, search_settings)
from .samplers import (MCTSSampler, SeededNSGAIISampler, SeededRandomSampler, build_tree,
                       select_path, ucb_score)
from .searchers import (BaseSearcher, GridSearcher, MCTSSearcher, NSGA2Searcher,
                        RandomSearcher, build_searcher)
from .space import Decision, SearchSpace

__all__ = [
    'SearchSpace', 'Decision', 'MCTSSampler', 'SeededRandomSampler', 'SeededNSGAIISampler',
    'build_tree', 'select_path', 'ucb_score', 'BaseSearcher', 'RandomSearcher',
    'GridSearcher', 'MCTSSearcher', 'NSGA2Searcher', 'build_searcher', 'SearchLoop',
    'TrialRunner', 'TrialResult', 'apply_proxy', 'open_storage', 'open_study',
    'recover_orphans', 'search_settings', 'write_report', 'SuccessiveHalvingSearcher',
    'OperationSampler', 'rung_schedule', 'rung_summary'
]
