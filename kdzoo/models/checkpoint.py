"""Loading weights into teachers and students with errors that say what is wrong.

Files are read with ``torch.load(weights_only=True)`` through
:func:`kdzoo.utils.torch_load.load_checkpoint_file` (MMEngine's allow-list only): a missing,
truncated or corrupt file, or one holding code, fails with an error that names it.
"""
from collections import OrderedDict
from typing import Dict

import torch
from torch import nn

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
