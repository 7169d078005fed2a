"""The entry point of a search, shared by ``tools/search.py`` and the tabular benchmark.

:func:`prepare_search` turns a search config into a :class:`Search` (settings, space,
searcher, study, evaluator); :func:`run_search` runs the one loop over it;
:func:`write_search_report` writes the results. The tabular benchmark passes its own
``evaluate`` (a table look-up) and an in-memory storage, and runs exactly this.
"""
import copy
import os
import os.path as osp
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from mmengine.config import Config

from kdzoo.utils.files import read_json, write_json

from .loop import SearchLoop
from .report import add_test_result, write_report
from .runner import TrialRunner
from .searchers import BaseSearcher, build_searcher
from .settings import (Objective, apply_proxy, apply_validation, build_pruner, hook_name,
                       search_settings)
from .space import SearchSpace
from .storage import open_storage, open_study
from .trials import TrialBook


class SearchError(RuntimeError):
    """A search that cannot run (its message says why, in one line)."""


def load_search(cfg: Config) -> Tuple[Dict[str, Any], SearchSpace]:
    """The ``search`` settings of a config (defaults filled in) and its space."""
    settings = search_settings(cfg.to_dict().get('search'))
    return settings, SearchSpace.from_config(settings['space'])


@dataclass
class Search:
    """Everything one worker of a search needs."""
    settings: Dict[str, Any]
    space: SearchSpace
    searcher: BaseSearcher
    objective: Objective
    book: TrialBook
    evaluate: Callable
    work_dir: Optional[str]
    runner: Optional[TrialRunner] = None
    max_epochs: Optional[int] = None

    @property
    def study(self):
        return self.book.study


def check_work_dir(work_dir: str, study_name: str) -> None:
    """One study per work dir (trial folders are named by trial number), and one that can
    be written (else one clear line, before anything runs)."""
    try:
        os.makedirs(work_dir, exist_ok=True)
        probe = osp.join(work_dir, f'.write-test-{os.getpid()}')
        with open(probe, 'w'):
            pass
        os.remove(probe)
    except OSError as err:
        raise SystemExit(f'[search] cannot write to the work dir {work_dir}: '
                         f'{err.strerror or err}; give a writable --work-dir') from None
    marker = osp.join(work_dir, 'study.txt')
    if osp.isfile(marker):
        with open(marker) as f:
            old = f.read().strip()
        if old and old != study_name:
            raise SystemExit(f'{work_dir} holds the search of study {old!r}; use another '
                             f'--work-dir for study {study_name!r}')
        return
    try:
        with open(marker, 'x') as f:
            f.write(study_name + '\n')
    except FileExistsError:  # another worker wrote it a moment ago
        check_work_dir(work_dir, study_name)


def build_search(settings: Dict[str, Any], space: SearchSpace, storage, evaluate: Callable,
                 *, study_name: str = 'search', work_dir: Optional[str] = None,
                 runner: Optional[TrialRunner] = None, max_epochs: Optional[int] = None,
                 config_path: Optional[str] = None) -> Search:
    """A search from its parts: ``settings`` (:func:`search_settings`), the space, an
    Optuna storage object and the evaluator."""
    searcher = build_searcher(settings['searcher'], settings['seed'])
    directions = searcher.directions(settings['direction'])
    pruner = build_pruner(settings['pruner'])
    if pruner is not None and len(directions) > 1:
        raise ValueError(f'search.pruner works with one objective; searcher '
                         f'{type(searcher).__name__} has {len(directions)}')
    attrs = dict(metric=settings['metric'])
    if config_path:
        attrs['config'] = osp.abspath(config_path)
    study = open_study(storage, study_name, directions, searcher.sampler(space), space,
                       settings['enqueue'], attrs=attrs, pruner=pruner)
    return Search(settings, space, searcher, Objective(settings['metric'],
                                                       settings['direction']),
                  TrialBook(study, storage), evaluate, work_dir, runner, max_epochs)


def check_reward_terms(searcher, cfg: Config) -> None:
    """``reward='autokd'`` needs the trials to log CE and CKA: an ``AutoKDRewardHook``
    (``search.proxy.autokd_reward=dict(student=..., teacher=...)``)."""
    if not isinstance(searcher, dict) or searcher.get('reward') != 'autokd':
        return
    hooks = [hook_name(h) for h in cfg.get('custom_hooks') or []]
    if 'AutoKDRewardHook' not in hooks:
        raise SearchError(
            "searcher reward='autokd' needs each trial's validation CE and CKA: set "
            "search.proxy.autokd_reward=dict(student='backbone.fc', teacher='backbone.fc') "
            '(the student and teacher features whose CKA counts); no trial was run')


def prepare_search(cfg: Config, work_dir: str, *, study_name: str = 'search',
                   n_trials: Optional[int] = None, storage: Optional[str] = None,
                   cmdline_options: Optional[dict] = None, train_script: Optional[str] = None,
                   config_path: Optional[str] = None) -> Search:
    """The search of a config with a ``search`` dict, whose trials train with
    ``tools/train.py`` (:class:`TrialRunner`) under ``work_dir``.

    Args:
        storage: a storage URL or path (see :func:`open_storage`); default
            ``WORK_DIR/search.journal``.
        cmdline_options: ``--cfg-options``; they win over the proxy settings.
    """
    if n_trials is not None:
        cfg.merge_from_dict({'search.n_trials': n_trials})
    settings, space = load_search(cfg)
    check_work_dir(work_dir, study_name)
    raw = cfg.to_dict()
    raw.pop('search', None)
    full_cfg = Config(copy.deepcopy(raw), filename=cfg.filename)
    options = {k: v for k, v in (cmdline_options or {}).items() if not k.startswith('search.')}
    # The command line edits the data sets before the validation split wraps them, and wins
    # over the proxy settings.
    data_keys = ('train_dataloader.dataset.', 'val_dataloader.dataset.')
    proxy_cfg = Config(copy.deepcopy(raw), filename=cfg.filename)
    proxy_cfg.merge_from_dict(options)
    proxy_cfg, proxy = apply_validation(proxy_cfg, settings['validation'], settings['proxy'])
    proxy_cfg = apply_proxy(proxy_cfg, proxy)
    proxy_cfg.merge_from_dict({k: v for k, v in options.items()
                               if not (settings['validation'] and k.startswith(data_keys))})
    searcher_name = settings['searcher'] if isinstance(settings['searcher'], str) else \
        settings['searcher'].get('type')
    check_reward_terms(settings['searcher'], proxy_cfg)
    runner = TrialRunner(
        proxy_cfg, space, work_dir,
        objective=Objective(settings['metric'], settings['direction']), full_cfg=full_cfg,
        train_script=train_script, env=settings['trial_env'],
        timeout=settings['trial_timeout'], heartbeat_interval=settings['heartbeat_interval'],
        keep_checkpoints=settings['keep_checkpoints'], gpus=settings['trial_gpus'],
        launcher=settings['trial_launcher'],
        header=f'kdzoo search, study {study_name!r}, searcher {searcher_name}\n')
    return build_search(settings, space, open_storage(storage, work_dir), runner,
                        study_name=study_name, work_dir=work_dir, runner=runner,
                        max_epochs=runner.max_epochs, config_path=config_path)


def write_search_report(search: Search, test: bool = False):
    """Tables, plots and best configs under the work dir; returns the best trial.

    ``test`` (once, when the search is over; ``tools/search.py`` does it): when the trials
    were scored on a validation split (``search.validation``), the best trial's model is
    evaluated on the config's test split, the only time a search reads it
    (``best_test.json``; a column of ``results.csv`` and a line of ``results.md``).
    """
    best = write_report(search.study, search.space, search.searcher, search.work_dir,
                        search.objective.metric, search.runner)
    if test and best is not None and search.settings.get('validation') \
            and search.runner is not None:
        metrics = test_best_trial(search, best)
        if metrics is not None:
            add_test_result(search.work_dir, best.number, search.objective.metric, metrics)
    return best


def test_best_trial(search: Search, best) -> Optional[dict]:
    """The test metrics of the best trial's model (cached in ``best_test.json`` for that
    trial), or None when its checkpoint was not kept."""
    work_dir = search.work_dir
    out = osp.join(work_dir, 'best_test.json')
    cached = read_json(out)
    if cached is not None and cached.get('trial') == best.number:
        return cached['metrics']
    trial_dir = osp.join(work_dir, 'trials', str(int(best.user_attrs.get('sh_candidate',
                                                                          best.number))))
    last = osp.join(trial_dir, 'last_checkpoint')
    if not osp.isfile(last):
        return None
    with open(last) as f:
        checkpoint = f.read().strip()
    metrics_file = osp.join(work_dir, 'best_test', 'metrics.json')
    search.runner.test(osp.join(work_dir, 'best_config.py'), checkpoint, metrics_file,
                       osp.join(work_dir, 'best_test'))
    metrics = read_json(metrics_file)
    write_json(out, dict(trial=best.number, checkpoint=checkpoint, metrics=metrics))
    return metrics


def run_search(search: Search, resume: bool = False, report: bool = True,
               log: Optional[Callable[[str], None]] = print,
               on_progress: Optional[Callable[[dict], None]] = None) -> str:
    """Run the search loop; returns why it stopped. ``resume`` first FAILs and re-enqueues
    the trials left RUNNING by dead workers; ``report`` rewrites the report after every
    trial (a report that cannot be written is logged and retried after the next trial:
    the search goes on); ``on_progress`` gets the running trial's progress."""
    log = log or (lambda msg: None)
    search.book.log = log
    if resume:
        recovered = search.book.recover_orphans(search.settings['stale_after'])
        if recovered:
            log(f'[search] resume: trials {recovered} had no live worker; marked FAILED and '
                f're-enqueued')

    if search.runner is not None and search.settings['preflight']:
        log('[search] pre-flight: building the first candidate and running one batch')
        error = search.runner.preflight(search.space.first_valid())
        if error is not None:
            raise SearchError(f'pre-flight failed, no trial was run: {error}')

    def on_trial_end(study):
        try:
            write_search_report(search)
        except Exception as err:  # e.g. a full disk: the results are in the storage
            log(f'[search] the report could not be written ({type(err).__name__}: {err}); '
                f'it is written again after the next trial')
    loop = SearchLoop(search.book, search.space, search.searcher, search.evaluate,
                      search.settings['n_trials'], objective=search.objective,
                      max_rejects=search.settings['max_rejects'],
                      on_trial_end=on_trial_end if report and search.work_dir else None,
                      log=log, stale_after=search.settings['stale_after'],
                      max_epochs=search.max_epochs, on_progress=on_progress)
    return loop.run()
