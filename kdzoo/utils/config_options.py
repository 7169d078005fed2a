"""``--cfg-options`` with distill terms addressed by name.

MMEngine reaches list items by position only (``model.distill_terms.0.weight=2``);
:func:`merge_cfg_options` also accepts the term's ``name`` (the ``name`` key of the term, by
default ``kd<i>``, as in the loss names ``loss_<name>``)::

    python tools/train.py CONFIG --cfg-options model.distill_terms.kd0.weight=2.0 \\
        model.distill_terms.at.tau=1.0
"""
from typing import Dict, Optional

from mmengine.config import Config

TERMS_KEY = 'model.distill_terms'


def term_names(cfg: Config) -> list:
    """The names of ``cfg.model.distill_terms`` in order (``name``, default ``kd<i>``)."""
    terms = (cfg.get('model') or {}).get('distill_terms') or []
    return [term.get('name', f'kd{i}') if isinstance(term, dict) else f'kd{i}'
            for i, term in enumerate(terms)]


def resolve_term_names(cfg: Config, options: Optional[Dict]) -> Dict:
    """``options`` with every ``model.distill_terms.<name>[.<key>...]`` key rewritten to the
    term's index; other keys (and numeric indices) pass unchanged. An unknown name raises
    ``KeyError`` naming it and the valid names."""
    resolved = {}
    for key, value in (options or {}).items():
        prefix = TERMS_KEY + '.'
        if not key.startswith(prefix):
            resolved[key] = value
            continue
        name, _, rest = key[len(prefix):].partition('.')
        if name.isdigit():
            resolved[key] = value
            continue
        names = term_names(cfg)
        if name not in names:
            valid = ', '.join(f'{n} ({i})' for i, n in enumerate(names)) or 'none'
            raise KeyError(f'--cfg-options {key}: no distill term named {name!r}; the '
                           f'terms (name (index)) are: {valid}')
        index = names.index(name)
        resolved[f'{prefix}{index}' + (f'.{rest}' if rest else '')] = value
    return resolved


def merge_cfg_options(cfg: Config, options: Optional[Dict]) -> Config:
    """Merge ``--cfg-options`` into ``cfg`` (``Config.merge_from_dict``) after
    :func:`resolve_term_names`; returns ``cfg``."""
    if options:
        cfg.merge_from_dict(resolve_term_names(cfg, options))
    return cfg


__all__ = ['merge_cfg_options', 'resolve_term_names', 'term_names']


def data_config(dataset: dict) -> dict:
    """The dataset dict that holds the data and its ``pipeline``, found through wrappers
    that hold a ``dataset`` (``HeldOutSplit``, ``SeededDataset``, ``TeachingDataset``, ...)."""
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    return dataset
