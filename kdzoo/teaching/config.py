"""A config's top-level ``teaching=dict(...)``, applied to its model and train dataset.

One field selects the teaching mode (``--cfg-options teaching.mode=same/ic`` works, since
this runs after the options are merged): :func:`apply_teaching` copies it into the
distiller (``model.teaching``: the teacher's source, mixup) and wraps the train dataset in
a :class:`~kdzoo.teaching.TeachingDataset` (the views). kdzoo's tools call it; a script
that builds MMEngine's ``Runner`` itself calls it on the config first.
"""
import copy

from mmengine.config import Config, ConfigDict

from kdzoo.utils.config_options import data_config
from .modes import Teaching

DISTILLERS = ('Distiller', 'kdzoo.Distiller')


def _loading_steps(pipeline) -> list:
    """The leading steps of a pipeline that load the raw image (``Load*``)."""
    steps = []
    for step in pipeline or []:
        kind = str(step.get('type', '')).split('.')[-1]
        if not kind.startswith('Load'):
            break
        steps.append(step)
    return steps


def _pack_step(pipeline):
    """The pipeline's packing step (its last ``Pack*`` step), or None for the default."""
    for step in reversed(pipeline or []):
        if str(step.get('type', '')).split('.')[-1].startswith('Pack'):
            return copy.deepcopy(step)
    return None


def apply_teaching(cfg: Config) -> Config:
    """Apply ``cfg.teaching`` (if any) to ``cfg.model`` and ``cfg.train_dataloader``.

    The train dataset keeps its loading steps (its other steps are the mode's views now)
    and is wrapped as ``dict(type='TeachingDataset', dataset=..., teaching=..., pack=...)``;
    a model that is a kdzoo ``Distiller`` gets ``teaching``; any other model (a student
    trained alone on the mode's student views) gets the student's views only. Applying it
    twice changes nothing.
    """
    spec = cfg.get('teaching')
    if spec is None:
        return cfg
    teaching = Teaching.from_cfg(spec)  # fails early, naming a bad key or mode
    spec = ConfigDict(copy.deepcopy(dict(spec)))
    model = cfg.get('model')
    is_distiller = isinstance(model, dict) and model.get('type') in DISTILLERS
    if is_distiller:
        model['teaching'] = spec
    loader = cfg.get('train_dataloader')
    if loader is None:
        return cfg
    dataset = loader['dataset']
    if dataset.get('type') == 'TeachingDataset':
        dataset['teaching'] = spec
        return cfg
    inner = copy.deepcopy(dataset)
    data = data_config(inner)  # through a HeldOutSplit or another wrapper
    pipeline = data.get('pipeline')
    data['pipeline'] = _loading_steps(pipeline)
    wrapped = dict(type='TeachingDataset', dataset=inner, teaching=spec,
                   teacher_views=is_distiller)
    pack = _pack_step(pipeline)
    if pack is not None:
        wrapped['pack'] = pack
    loader['dataset'] = wrapped
    sampler = loader.get('sampler') or {}
    if str(sampler.get('type', '')).split('.')[-1] not in ('SeededSampler',
                                                           'SeededInfiniteSampler'):
        raise ValueError(
            f'teaching.mode={teaching.mode!r} draws every view from per-sample seeds: set '
            f'train_dataloader.sampler=dict(type="SeededSampler", shuffle=True) (the sampler '
            f'is {sampler.get("type")!r})')
    return cfg


__all__ = ['apply_teaching']
