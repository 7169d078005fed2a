"""Loading weights into teachers and students with errors that say what is wrong.

Fine-tuning from a pre-trained student (KDEP's downstream step) loads every tensor that fits
and re-initialises the task head: :func:`load_pretrained` and the ``FineTunePretrained``
initializer (``init_cfg``) of a downstream classifier config.

Files are read with ``torch.load(weights_only=True)`` through
:func:`kdzoo.utils.torch_load.load_checkpoint_file` (MMEngine's allow-list only): a missing,
truncated or corrupt file, or one holding code, fails with an error that names it.
"""
from collections import OrderedDict
from typing import Dict, List, Sequence, Union

import torch
from mmengine.logging import print_log
from torch import nn

from kdzoo.registry import WEIGHT_INITIALIZERS
from kdzoo.utils.torch_load import load_checkpoint_file

# A distiller's checkpoint stores the student under this prefix.
STUDENT_PREFIX = 'student.'
# A kdzoo classifier keeps its network under this prefix.
BACKBONE_PREFIX = 'backbone.'


def read_state_dict(path: str, owner: str = 'teacher') -> Dict[str, torch.Tensor]:
    """The state dict of a checkpoint file (MMEngine, plain or student-only)."""
    checkpoint = load_checkpoint_file(path, map_location='cpu', owner=owner)
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'{owner} checkpoint {path} holds no state dict')
    state = OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                        for k, v in state.items())
    if any(k.startswith(STUDENT_PREFIX) for k in state):
        # A distiller checkpoint: keep its student.
        state = OrderedDict((k[len(STUDENT_PREFIX):], v) for k, v in state.items()
                            if k.startswith(STUDENT_PREFIX))
    return state


def _match_classifier_prefix(state: Dict[str, torch.Tensor],
                             expected: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The plain network's state dict of a classifier (``conv1.weight`` for
    ``backbone.conv1.weight``, e.g. a timm / torchvision model saved on its own) gets the
    ``backbone.`` prefix when none of its keys fits as it is and all fit with the prefix;
    the strict check that follows still names any missing or mis-shaped key."""
    if not state or any(k in expected for k in state):
        return state
    prefixed = OrderedDict((BACKBONE_PREFIX + k, v) for k, v in state.items())
    return prefixed if all(k in expected for k in prefixed) else state


def load_checkpoint_strict(model: nn.Module, path: str, owner: str = 'teacher') -> int:
    """Load ``path`` into ``model``; raise listing missing / unexpected / mis-shaped keys.

    Returns the number of tensors loaded (all of the model's state dict)."""
    expected = model.state_dict()
    state = _match_classifier_prefix(read_state_dict(path, owner), expected)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}'
                  for k, v in expected.items()
                  if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or mis_shaped:
        def show(keys):
            return ', '.join(keys[:8]) + (f' ... ({len(keys)} in all)' if len(keys) > 8 else '')
        raise RuntimeError(
            f'{owner} checkpoint {path} does not match the {owner} model:\n'
            f'  missing keys: {show(missing) or "none"}\n'
            f'  unexpected keys: {show(unexpected) or "none"}\n'
            f'  shape mismatches: {show(mis_shaped) or "none"}')
    model.load_state_dict(state, strict=True)
    return len(state)


def _show(keys: Sequence[str], limit: int = 8) -> str:
    keys = list(keys)
    if not keys:
        return 'none'
    return ', '.join(keys[:limit]) + (f' ... ({len(keys)} in all)' if len(keys) > limit else '')


def _under(key: str, paths: Sequence[str]) -> bool:
    return any(key == p or key.startswith(p + '.') for p in paths)


def load_pretrained(model: nn.Module, path: str,
                    reinit: Union[str, Sequence[str]] = ('backbone.fc', ),
                    owner: str = 'pretrained') -> Dict[str, List[str]]:
    """Initialise ``model`` from the pre-trained checkpoint ``path``, except ``reinit``.

    ``path`` may be a student-only checkpoint (``student_latest.pth`` of a distillation
    run), a distiller checkpoint (its ``student.`` weights are taken), an MMEngine
    checkpoint of a classifier or a plain network's state dict (given the ``backbone.``
    prefix when that makes it fit). Every tensor whose key and shape fit is loaded; the
    modules named in ``reinit`` (default: the classifier head ``backbone.fc``) are not
    loaded and keep the initialisation they got when the model was built, so a new head
    starts fresh even when its shape matches the old one. Keys the checkpoint lacks and
    shape mismatches also keep their initialisation; all of them are logged.

    Returns ``dict(loaded, reinit, missing, unexpected, mis_shaped)`` (lists of keys).
    Raises when ``reinit`` names no module of ``model`` or when not a single tensor fits.
    """
    from .recorder import find_module
    reinit = [reinit] if isinstance(reinit, str) else [str(p) for p in reinit]
    for module_path in reinit:
        find_module(model, module_path, 'the fine-tuned model')  # a typo fails here
    expected = model.state_dict()
    state = _match_classifier_prefix(read_state_dict(path, owner), expected)
    report = dict(loaded=[], reinit=[], missing=[], unexpected=[], mis_shaped=[])
    to_load = OrderedDict()
    for key, value in expected.items():
        if _under(key, reinit):
            report['reinit'].append(key)
        elif key not in state:
            report['missing'].append(key)
        elif tuple(state[key].shape) != tuple(value.shape):
            report['mis_shaped'].append(f'{key}: checkpoint {tuple(state[key].shape)} vs '
                                        f'model {tuple(value.shape)}')
        else:
            to_load[key] = state[key]
            report['loaded'].append(key)
    report['unexpected'] = [k for k in state if k not in expected]
    if not to_load:
        raise RuntimeError(
            f'{owner} checkpoint {path} has no tensor that fits the model (re-initialised: '
            f'{_show(report["reinit"])}; missing: {_show(report["missing"])}; unexpected: '
            f'{_show(report["unexpected"])}; shape mismatches: '
            f'{_show(report["mis_shaped"])})')
    model.load_state_dict(to_load, strict=False)
    print_log(
        f'{owner} checkpoint {path}: loaded {len(report["loaded"])} of {len(expected)} '
        f'tensors\n'
        f'  re-initialised (not loaded, {", ".join(reinit) or "nothing"}): '
        f'{_show(report["reinit"])}\n'
        f'  missing in the checkpoint (kept their init): {_show(report["missing"])}\n'
        f'  shape mismatches (kept their init): {_show(report["mis_shaped"])}\n'
        f'  unexpected (in the checkpoint, not in the model; ignored): '
        f'{_show(report["unexpected"])}', logger='current')
    return report


@WEIGHT_INITIALIZERS.register_module()
class FineTunePretrained:
    """``init_cfg`` of a downstream model: :func:`load_pretrained` of ``checkpoint``.

    ::

        model = dict(type='ImageClassifier', backbone=...,
                     init_cfg=dict(type='FineTunePretrained',
                                   checkpoint='work_dirs/kdep/student_latest.pth',
                                   reinit=['backbone.fc']))

    Unlike MMEngine's ``Pretrained`` (which loads every key that fits, the old head
    included when its shape matches), the ``reinit`` modules are never loaded, and what
    was loaded, re-initialised, missing or mis-shaped is logged. The runner calls it when
    training starts (``init_weights``); a resumed run then loads its own checkpoint over it.
    """

    def __init__(self, checkpoint: str, reinit: Union[str, Sequence[str]] = ('backbone.fc', )):
        if not checkpoint:
            raise ValueError('FineTunePretrained needs checkpoint=FILE (e.g. the '
                             'student_latest.pth of a KDEP pre-training run)')
        self.checkpoint = checkpoint
        self.reinit = [reinit] if isinstance(reinit, str) else list(reinit)

    def __call__(self, module: nn.Module) -> None:
        load_pretrained(module, self.checkpoint, self.reinit)
        if hasattr(module, '_params_init_info'):
            from mmengine.model.weight_init import update_init_info
            update_init_info(module, init_info=f'FineTunePretrained: {self.checkpoint} '
                                               f'(re-initialised: {", ".join(self.reinit)})')
