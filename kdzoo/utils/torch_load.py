"""Make MMEngine 0.10.7 checkpoints load under torch >= 2.6 (``--resume``, ``load_from``).

torch 2.6 switched ``torch.load`` to ``weights_only=True``. MMEngine 0.10.7 calls it without
the argument, and its training checkpoints pickle more than tensors: the message hub's
``HistoryBuffer`` objects (including references to their statistics methods, which need
``builtins.getattr``), numpy arrays and scalars. An allow-list cannot admit ``getattr``
without admitting everything, so kdzoo registers a local-file loader through MMEngine's own
plug-in point (``CheckpointLoader.register_scheme``) that loads these files as MMEngine did
on torch < 2.6. Load only checkpoints you trust, as with any pickle.
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader


def load_local_checkpoint(filename: str, map_location=None):
    """MMEngine's local loader, with the pre-2.6 ``torch.load`` behaviour."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint not found: {filename}')
    return torch.load(filename, map_location=map_location, weights_only=False)


def allow_mmengine_checkpoints() -> None:
    """Route MMEngine's loading of local checkpoint files through kdzoo's loader."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
