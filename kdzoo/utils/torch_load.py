"""Make MMEngine 0.10.7 checkpoints load under torch >= 2.6.

torch 2.6 switched ``torch.load`` to ``weights_only=True``; MMEngine 0.10.7 calls it without
the argument, and its checkpoints carry a few non-tensor objects (the message hub's
``HistoryBuffer``, numpy scalars and arrays), so ``--resume`` fails. Rather than turning the
safety check off, kdzoo allows exactly those classes as safe globals.
"""
import numpy as np
import torch


def _numpy_globals():
    multiarray = getattr(np, '_core', None) or np.core
    items = [multiarray.multiarray._reconstruct, np.ndarray, np.dtype,
             multiarray.multiarray.scalar]
    # numpy >= 1.25 has one dtype class per dtype (np.dtypes.Float64DType, ...).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        items += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    return items


def allow_mmengine_checkpoints() -> None:
    """Register the classes MMEngine checkpoints hold as ``torch.load`` safe globals."""
    if not hasattr(torch.serialization, 'add_safe_globals'):
        return  # torch < 2.4 loads everything anyway
    from mmengine.logging import HistoryBuffer
    from mmengine.config import ConfigDict
    torch.serialization.add_safe_globals([HistoryBuffer, ConfigDict, *_numpy_globals()])
