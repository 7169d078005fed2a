"""Reading checkpoint files with ``torch.load(weights_only=True)`` and a small allow-list.

Every checkpoint kdzoo reads goes through :func:`load_checkpoint_file`: teacher weights,
student-only checkpoints (``tools/test.py``), ``load_from`` and ``--resume`` (MMEngine's loader
of local files is routed here by :func:`allow_mmengine_checkpoints`). ``weights_only=True``
rebuilds tensors and plain Python containers and refuses anything else, so a checkpoint
cannot run code when it is loaded.

MMEngine 0.10.7 checkpoints pickle a few more objects (its message hub's state). The
allow-list (:data:`CHECKPOINT_SAFE_GLOBALS`) admits exactly those:

- ``mmengine.logging.history_buffer.HistoryBuffer`` (logged scalars);
- numpy arrays, dtypes and scalars inside it (``numpy.ndarray``, ``numpy.dtype`` and its
  per-type classes, ``numpy._core.multiarray._reconstruct`` / ``scalar``, also under their
  numpy 1.x names ``numpy.core.multiarray.*``);
- ``builtins.getattr``, which pickle writes to name a method (``getattr(HistoryBuffer,
  'mean')``). A real ``getattr`` would reach any attribute of any object, so the name is
  bound to :func:`_method_of_allowed_class`, which returns only public methods of the
  allow-listed classes and refuses everything else.

A file holding anything else fails with an error that names the file and the refused
globals; see ``docs/security.md``.
"""
import inspect
import os
import os.path as osp
import pickle
import zipfile
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ['CHECKPOINT_SAFE_GLOBALS', 'load_checkpoint_file', 'load_local_checkpoint',
           'allow_mmengine_checkpoints']

#: Classes whose public methods a checkpoint may name (pickle writes them as getattr calls).
_METHOD_OWNERS = (HistoryBuffer,)


def _method_of_allowed_class(owner: Any, name: str) -> Callable:
    """``getattr(owner, name)`` for a public method of an allow-listed class, else an error.

    Bound to the name ``builtins.getattr`` while a checkpoint is unpickled."""
    if any(owner is cls for cls in _METHOD_OWNERS) and isinstance(name, str) \
            and not name.startswith('_') and inspect.isfunction(vars(owner).get(name)):
        return getattr(owner, name)
    allowed = ', '.join(f'{cls.__module__}.{cls.__qualname__}' for cls in _METHOD_OWNERS)
    raise pickle.UnpicklingError(
        f'the checkpoint asks for getattr({owner!r}, {name!r}); only public methods of '
        f'{allowed} are allowed')


def _numpy_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    found = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        func = getattr(multiarray, name)
        found += [(func, f'numpy._core.multiarray.{name}'),
                  (func, f'numpy.core.multiarray.{name}')]
    # numpy >= 1.25 pickles a dtype's state on its own class (numpy.dtypes.Float64DType, ...).
    for char in '?bBhHiIlLqQefdgFDGSUV':
        found.append(type(np.dtype(char)))
    return found


#: What :func:`load_checkpoint_file` allows beyond tensors and Python containers.
CHECKPOINT_SAFE_GLOBALS: List[Union[Callable, Tuple[Callable, str]]] = [
    HistoryBuffer, (_method_of_allowed_class, 'builtins.getattr'), *_numpy_globals()]


def _allowed_names() -> set:
    names = set()
    for entry in CHECKPOINT_SAFE_GLOBALS:
        if isinstance(entry, tuple):
            names.add(entry[1])
        else:
            names.add(f'{entry.__module__}.{entry.__qualname__}')
    return names


def _unreadable(path: str, owner: str, err: Exception) -> RuntimeError:
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(4)
    if head.startswith(b'PK') and not zipfile.is_zipfile(path):
        what = (f'it is truncated: a cut-off zip archive of {size} bytes (an interrupted save '
                f'or copy); save or copy it again')
    elif size == 0:
        what = 'it is empty (0 bytes)'
    else:
        what = f'it is not a complete PyTorch checkpoint ({size} bytes)'
    return RuntimeError(f'{owner} checkpoint {path} cannot be read: {what}. '
                        f'torch.load said: {type(err).__name__}: {err}')


def _weights_only_reason(err: Exception) -> str:
    """The refusal itself, without torch's advice to load with ``weights_only=False``."""
    boilerplate = ('Weights only load failed', 'Please file an issue', 'Check the documentation')
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    reason = ' '.join(line for line in lines if not line.startswith(boilerplate))
    return reason.rstrip('.') or str(err)


def load_checkpoint_file(path: str, map_location: Any = 'cpu', owner: str = 'checkpoint'):
    """``torch.load(path, weights_only=True)`` with MMEngine's allow-list and errors that
    name the file: missing, truncated or corrupt, or holding non-allow-listed objects."""
    path = osp.expanduser(os.fspath(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'{owner} checkpoint not found: {path}')
    try:
        with torch.serialization.safe_globals(CHECKPOINT_SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            refused = sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
                             - _allowed_names())
        except Exception:  # unreadable as well: report it as such
            raise _unreadable(path, owner, err) from err
        what = ', '.join(refused) if refused else 'objects outside the allow-list'
        raise pickle.UnpicklingError(
            f'{owner} checkpoint {path} holds {what}, which kdzoo does not load: '
            f'{_weights_only_reason(err)}. Checkpoints are read with torch.load('
            f'weights_only=True), which refuses code and classes outside an allow-list '
            f'(docs/security.md). If you trust this file, allow them before loading with '
            f'torch.serialization.add_safe_globals([...]), e.g. in a module that the config '
            f'imports with custom_imports.') from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise _unreadable(path, owner, err) from err


def load_local_checkpoint(filename: str, map_location=None):
    """MMEngine's loader of local files (``load_from``, ``--resume``), weights only."""
    return load_checkpoint_file(filename, map_location=map_location, owner='checkpoint')


def allow_mmengine_checkpoints() -> None:
    """Route MMEngine's loading of local checkpoint files through :func:`load_checkpoint_file`
    (MMEngine 0.10.7 calls ``torch.load`` without ``weights_only``, which fails on its own
    checkpoints under torch >= 2.6)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
