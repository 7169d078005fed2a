"""Capture module outputs by dotted path with forward hooks; models are never edited."""
import difflib
import re
from typing import Dict, Iterable, Tuple

import torch
from torch import nn

_INDEXED = re.compile(r'^(?P<path>[^\[]*)(\[(?P<index>-?\d+)\])?$')


def parse_source(source: str) -> Tuple[str, int]:
    """``'neck'`` -> ``('neck', None)``; ``'backbone[3]'`` picks item 3 of a tuple output."""
    match = _INDEXED.match(source)
    if match is None:
        raise ValueError(f'bad feature source {source!r}; use a dotted module path, '
                         f'optionally with [i] to pick one item of a tuple output')
    index = match.group('index')
    return match.group('path'), None if index is None else int(index)


def find_module(model: nn.Module, path: str, owner: str = 'model') -> nn.Module:
    """``model.get_submodule(path)`` with an error that suggests the nearest names."""
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [name for name, _ in model.named_modules() if name]
        close = difflib.get_close_matches(path, names, n=5, cutoff=0.5)
        raise KeyError(
            f'{owner} has no module {path!r}. Nearest module names: {close or names[:10]}. '
            f'List them all with tools/misc/print_modules.py CONFIG') from None


class FeatureRecorder:
    """Records the outputs of the named modules of ``model`` while active.

    Use as a context manager: hooks are registered once, and outputs are kept only inside
    ``with recorder:`` so evaluation forwards cost nothing extra.
    """

    def __init__(self, model: nn.Module, sources: Iterable[str], owner: str = 'model'):
        self.outputs: Dict[str, torch.Tensor] = {}
        self.active = False
        self._handles = []
        self._sources = {}
        for source in dict.fromkeys(sources):
            path, index = parse_source(source)
            module = find_module(model, path, owner)
            self._sources[source] = (path, index)
            self._handles.append(module.register_forward_hook(self._hook(source, index)))

    def _hook(self, source: str, index):
        def hook(module, inputs, output):
            if not self.active:
                return
            if index is not None:
                output = output[index]
            elif isinstance(output, (tuple, list)):
                raise TypeError(f'module {source!r} returns a {type(output).__name__} of '
                                f'{len(output)} items; pick one with {source}[i]')
            self.outputs[source] = output
        return hook

    def __enter__(self):
        self.outputs = {}
        self.active = True
        return self

    def __exit__(self, *exc):
        self.active = False

    def get(self, source: str) -> torch.Tensor:
        if source not in self.outputs:
            raise RuntimeError(f'module {source!r} was not called in the forward pass, so '
                               f'there is no feature to distil')
        return self.outputs[source]

    def remove(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []
