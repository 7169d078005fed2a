"""Loading weights into teachers and students with errors that say what is wrong."""
import os.path as osp
from collections import OrderedDict
from typing import Dict

import torch
from torch import nn

# A distiller's checkpoint stores the student under this prefix.
STUDENT_PREFIX = 'student.'


def read_state_dict(path: str, owner: str = 'teacher') -> Dict[str, torch.Tensor]:
    """The state dict of a checkpoint file (MMEngine, plain or student-only)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{owner} checkpoint not found: {path}')
    checkpoint = torch.load(path, map_location='cpu', weights_only=False)
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


def load_checkpoint_strict(model: nn.Module, path: str, owner: str = 'teacher') -> None:
    """Load ``path`` into ``model``; raise listing missing / unexpected / mis-shaped keys."""
    state = read_state_dict(path, owner)
    expected = model.state_dict()
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
