"""What a config's ``search`` dict says: the settings with their defaults, the objective,
and the config rewrites of a trial (proxy settings, a rung's epoch budget).

Nothing here touches Optuna or the disk: these are pure functions of configs.
"""
import copy
from dataclasses import dataclass
from typing import Optional, Tuple

from mmengine.config import Config

from kdzoo.utils import check_keys
from kdzoo.utils.config_options import data_config
from .forkserver import check_launcher

#: Keys of ``search`` in a config, with their defaults.
SEARCH_DEFAULTS = dict(
    searcher=dict(type='random'),
    n_trials=16,
    seed=0,
    metric='accuracy/top1',
    direction='maximize',
    space=None,
    proxy=dict(),
    enqueue=[],
    trial_timeout=None,
    trial_env=dict(),
    trial_gpus=1,
    # 'fork': trials are forked from a warm process that has imported the stack (Linux;
    # else they spawn, with a log line); 'spawn': each trial starts a new interpreter
    trial_launcher='fork',
    heartbeat_interval=60.0,
    stale_after=600.0,
    max_rejects=200,
    keep_checkpoints=True,
    pruner=None,
    preflight=True,
    # trials are scored on a part carved from the training data, never on the test split
    validation=dict(val_size=0.1, seed=0, stratified=True),
)
#: Directions of the metric.
DIRECTIONS = ('maximize', 'minimize')
#: Keys of ``search.validation``.
VALIDATION_KEYS = ('val_size', 'seed', 'stratified')
#: Keys of ``search.proxy``.
PROXY_KEYS = ('train_indices', 'val_indices', 'max_epochs', 'max_iters', 'val_interval',
              'cfg_options', 'suppression', 'good_enough', 'teacher_store', 'autokd_reward',
              'sparse')
#: ``search.proxy`` keys that add a training hook to the trial configs.
# Scoped names: the hooks build whatever the config's default scope is (kdzoo, mmdet, mmseg).
PROXY_HOOKS = dict(suppression='kdzoo.LossSuppressionHook',
                   good_enough='kdzoo.EarlyStopOnGoodEnoughHook',
                   autokd_reward='kdzoo.AutoKDRewardHook', sparse='kdzoo.SparseTrainingHook')


def hook_name(hook: dict) -> str:
    """A hook config's type without its scope (``'kdzoo.X'`` and ``'X'`` are one hook)."""
    return str(hook.get('type', '')).split('.')[-1]


@dataclass(frozen=True)
class Objective:
    """The metric a trial is scored by (a key of ``scalars.json``) and its direction."""
    metric: str = 'accuracy/top1'
    direction: str = 'maximize'

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f'search.direction={self.direction!r}; valid: '
                             f'{", ".join(DIRECTIONS)}')

    @property
    def sign(self) -> int:
        """+1 when larger is better, -1 otherwise: ``sign * value`` is to be maximised."""
        return 1 if self.direction == 'maximize' else -1

    @classmethod
    def of_study(cls, study, metric: str = 'accuracy/top1') -> 'Objective':
        """The objective of an Optuna study (its first direction)."""
        return cls(metric, study.directions[0].name.lower())


def search_settings(search: Optional[dict]) -> dict:
    """``search`` of a config with defaults filled in and unknown keys refused."""
    if not search:
        raise KeyError('the config has no "search" dict; see docs/search.md')
    search = copy.deepcopy(dict(search))
    check_keys(search, SEARCH_DEFAULTS, 'search')
    out = copy.deepcopy(SEARCH_DEFAULTS)
    out.update(search)
    if out['space'] is None:
        raise KeyError('search.space is missing')
    Objective(out['metric'], out['direction'])  # checks the direction
    for key in ('n_trials', 'max_rejects'):
        if not isinstance(out[key], int) or isinstance(out[key], bool) or out[key] < 1:
            raise ValueError(f'search.{key}={out[key]!r}; must be an int >= 1')
    if not isinstance(out['trial_gpus'], int) or out['trial_gpus'] < 1:
        raise ValueError(f'search.trial_gpus={out["trial_gpus"]!r}; must be an int >= 1 '
                         f'(training processes per trial)')
    check_launcher(out['trial_launcher'])
    return out


def build_pruner(spec: Optional[dict]):
    """An Optuna pruner from ``search.pruner`` (``dict(type='MedianPruner', ...)``, any
    class of ``optuna.pruners``), or ``None``. It sees each trial's validation values per
    epoch and may stop a single-objective trial early (the trial is PRUNED)."""
    if spec is None:
        return None
    import optuna
    spec = dict(spec) if isinstance(spec, dict) else dict(type=spec)
    name = spec.pop('type', None)
    valid = sorted(n for n in dir(optuna.pruners) if n.endswith('Pruner') and n != 'BasePruner')
    if name not in valid:
        raise KeyError(f'search.pruner type={name!r}; valid: {", ".join(valid)}')
    try:
        return getattr(optuna.pruners, name)(**spec)
    except TypeError as err:
        raise TypeError(f'bad arguments for search.pruner {name!r}: {err}') from err


def add_custom_hook(cfg: Config, hook: dict) -> Config:
    """Append ``hook`` to ``cfg.custom_hooks``, replacing a hook of the same type."""
    hooks = [h for h in (cfg.get('custom_hooks') or []) if hook_name(h) != hook_name(hook)]
    cfg.custom_hooks = hooks + [hook]
    return cfg


def _epoch_schedulers(cfg: Config):
    schedulers = cfg.get('param_scheduler') or []
    for sched in schedulers if isinstance(schedulers, (list, tuple)) else [schedulers]:
        if sched.get('by_epoch', True):
            yield sched


def apply_proxy(cfg: Config, proxy: Optional[dict]) -> Config:
    """Apply the proxy settings (a cheap stand-in for the full training) to ``cfg``.

    Keys: ``train_indices`` / ``val_indices`` (a subset: an int or a list), ``max_epochs``
    (epoch-based schedules whose ``T_max`` / ``end`` equalled the old ``max_epochs`` follow
    it), ``max_iters``, ``val_interval``, and ``cfg_options`` (any other dotted overrides).
    ``suppression`` / ``good_enough`` (dicts of arguments, ``True`` for the defaults) add a
    :class:`~kdzoo.engine.LossSuppressionHook` / :class:`~kdzoo.engine.EarlyStopOnGoodEnoughHook`
    to ``custom_hooks``; ``autokd_reward=dict(student=PATH, teacher=PATH)`` adds an
    :class:`~kdzoo.engine.AutoKDRewardHook` (the terms of ``reward='autokd'``);
    ``sparse=dict(sparsity=0.5, ...)`` a :class:`~kdzoo.engine.SparseTrainingHook` (Auto-KD's
    sparse training). ``teacher_store`` (a directory built by
    ``tools/build_teacher_store.py``) sets ``teaching.store``: every trial reads the
    teacher's outputs from it and runs no teacher (Auto-KD's proxy + offline setting).
    """
    proxy = dict(proxy or {})
    check_keys(proxy, PROXY_KEYS, 'search.proxy')
    options = {}
    if proxy.get('teacher_store'):
        if cfg.get('teaching') is None:
            raise KeyError('search.proxy.teacher_store needs the base config to have a '
                           "top-level teaching=dict(mode=..., size=...): the store holds the "
                           "teacher's outputs on that mode's views")
        options['teaching.store'] = proxy['teacher_store']
    if 'train_indices' in proxy:
        options['train_dataloader.dataset.indices'] = proxy['train_indices']
    if 'val_indices' in proxy:
        options['val_dataloader.dataset.indices'] = proxy['val_indices']
    for key in ('max_epochs', 'max_iters', 'val_interval'):
        if key in proxy:
            options[f'train_cfg.{key}'] = proxy[key]
    if 'max_epochs' in proxy:
        old = cfg.get('train_cfg', {}).get('max_epochs')
        for sched in _epoch_schedulers(cfg):
            for key in ('T_max', 'end'):
                if key in sched and sched[key] == old:
                    sched[key] = proxy['max_epochs']
    options.update(proxy.get('cfg_options') or {})
    cfg.merge_from_dict(options)
    for key, hook_type in PROXY_HOOKS.items():
        if proxy.get(key) not in (None, False):
            args = {} if proxy[key] is True else dict(proxy[key])
            add_custom_hook(cfg, dict(type=hook_type, **args))
    return cfg


def apply_validation(cfg: Config, validation: Optional[dict],
                     proxy: Optional[dict]) -> Tuple[Config, dict]:
    """Score the trials of ``cfg`` on a validation split carved from its training data.

    ``val_size``: a number of items, or a fraction of the training data (default 0.1).
    The train loader gets ``HeldOutSplit(part='train')`` of the training dataset (with the
    proxy's ``train_indices``, an int, as its ``train_size``), the val loader
    ``HeldOutSplit(part='val')`` of the *same* dataset with the val loader's pipeline; the
    test loader is left alone. Returns the config and the proxy without ``train_indices``.
    ``validation=None`` keeps the config's own val loader.
    """
    proxy = dict(proxy or {})
    if not validation:
        return cfg, proxy
    validation = dict(validation)
    check_keys(validation, VALIDATION_KEYS, 'search.validation')
    if 'val_indices' in proxy:
        raise KeyError('search.proxy.val_indices subsets the val loader, but with '
                       'search.validation the trials are scored on a split of the training '
                       'data: size it with search.validation.val_size (or set '
                       'search.validation=None to keep the val loader)')
    train_size = proxy.pop('train_indices', None)
    if train_size is not None and (not isinstance(train_size, int)
                                   or isinstance(train_size, bool)):
        raise ValueError(f'search.proxy.train_indices={train_size!r}: with search.validation '
                         f'give a number of training images (the split picks them)')
    train = copy.deepcopy(cfg.train_dataloader.dataset)
    if train.get('type') in ('HeldOutSplit', 'kdzoo.HeldOutSplit'):
        raise ValueError('the train loader is already a HeldOutSplit: set '
                         'search.validation=None to score on the config\'s own val loader')
    data = data_config(train)
    data.pop('indices', None)
    val_pipeline = data_config(cfg.val_dataloader.dataset).get('pipeline')
    split = dict(val_size=validation.get('val_size', 0.1), seed=int(validation.get('seed', 0)),
                 stratified=bool(validation.get('stratified', True)))
    # Scoped: it builds whatever the default scope is (kdzoo, mmdet, mmseg).
    cfg.train_dataloader.dataset = dict(type='kdzoo.HeldOutSplit', part='train', dataset=train,
                                        train_size=train_size, **split)
    val_data = copy.deepcopy(data)
    val_data['pipeline'] = val_pipeline
    val_data['test_mode'] = True
    cfg.val_dataloader.dataset = dict(type='kdzoo.HeldOutSplit', part='val', dataset=val_data,
                                      **split)
    return cfg, proxy


def budget_config(cfg: Config, budget: int, max_budget: int) -> Config:
    """``cfg`` trained for ``budget`` of ``max_budget`` epochs (a successive-halving rung).

    The epoch-based schedules are stretched to ``max_budget`` (so every rung trains a prefix
    of the same schedule and a resumed run continues it; a missing ``end`` becomes
    ``max_budget``), ``train_cfg.max_epochs = budget``, a checkpoint is saved at the end of
    the rung, and a :class:`~kdzoo.engine.LossSuppressionHook` is added (with its defaults
    unless ``search.proxy.suppression`` configured one).
    """
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_epochs' not in train_cfg or not train_cfg.get('by_epoch', True):
        raise ValueError('successive halving budgets are epochs: the config needs an '
                         'epoch-based train_cfg with max_epochs')
    cfg = apply_proxy(cfg, dict(max_epochs=int(max_budget)))
    # MMEngine ends an epoch-based scheduler without ``end`` at the run's max_epochs, and a
    # resumed run restores that ``end``: fix it to the last rung's budget.
    for sched in _epoch_schedulers(cfg):
        if 'end' not in sched:
            sched['end'] = int(max_budget)
    options = {'train_cfg.max_epochs': int(budget)}
    if 'checkpoint' in (cfg.get('default_hooks') or {}):
        options['default_hooks.checkpoint.save_last'] = True
    cfg.merge_from_dict(options)
    if not any(hook_name(h) == 'LossSuppressionHook' for h in cfg.get('custom_hooks') or []):
        add_custom_hook(cfg, dict(type=PROXY_HOOKS['suppression']))
    return cfg
