"""Capture module outputs (or inputs) by dotted path with hooks; models are never edited.

A feature source is ``path``, ``path[i]`` (item ``i`` of a tuple output), ``path:input``
(the module's positional input, e.g. ``'backbone.fc:input'``: the pooled penultimate
feature a classifier's last linear layer receives) or ``path:input[i]`` (its ``i``-th
positional input). ``path:output`` is the same as ``path``.
"""
import difflib
import re
from typing import Dict, Iterable, NamedTuple, Optional, Tuple

import torch
from torch import nn

#: The suffixes a feature source may carry after ``:``.
SOURCE_KINDS = ('output', 'input')

_SOURCE = re.compile(r'^(?P<path>[^\[:]*)(:(?P<kind>[^\[]*))?(\[(?P<index>-?\d+)\])?$')


class FeatureSource(NamedTuple):
    """A parsed feature source: the module path, ``'output'`` or ``'input'``, the index."""
    path: str
    kind: str
    index: Optional[int]


def parse_feature_source(source: str) -> FeatureSource:
    """``'neck[0]'`` -> ``('neck', 'output', 0)``; ``'head.fc:input'`` ->
    ``('head.fc', 'input', None)``."""
    match = _SOURCE.match(source)
    if match is None:
        raise ValueError(f'bad feature source {source!r}; use a dotted module path, '
                         f'optionally with [i] to pick one item of a tuple output, or '
                         f'path:input (path:input[i]) for the module\'s input')
    kind = match.group('kind')
    if kind is None:
        kind = 'output'
    elif kind not in SOURCE_KINDS:
        close = difflib.get_close_matches(kind, SOURCE_KINDS, n=1)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        raise ValueError(f'bad feature source {source!r}: unknown suffix {":" + kind!r}'
                         f'{hint}; valid suffixes: '
                         + ', '.join(':' + k for k in SOURCE_KINDS))
    index = match.group('index')
    return FeatureSource(match.group('path'), kind, None if index is None else int(index))


def parse_source(source: str) -> Tuple[str, Optional[int]]:
    """``'neck'`` -> ``('neck', None)``; ``'backbone[3]'`` picks item 3 of a tuple output;
    ``'head.fc:input'`` -> ``('head.fc', None)`` (the module path comes first)."""
    parsed = parse_feature_source(source)
    return parsed.path, parsed.index


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
    """Records the outputs (or inputs) of the named modules of ``model`` while active.

    Use as a context manager: hooks are registered once, and tensors are kept only inside
    ``with recorder:`` so evaluation forwards cost nothing extra. A module called several
    times in one forward (e.g. torchvision's ``BasicBlock.relu``) keeps its last call.
    """

    def __init__(self, model: nn.Module, sources: Iterable[str], owner: str = 'model'):
        self.outputs: Dict[str, torch.Tensor] = {}
        self.active = False
        self._handles = []
        self._sources = {}
        for source in dict.fromkeys(sources):
            parsed = parse_feature_source(source)
            module = find_module(model, parsed.path, owner)
            self._sources[source] = parsed
            if parsed.kind == 'input':
                # A pre-hook: an in-place module (ReLU(inplace=True)) would overwrite its
                # input before a forward hook could read it.
                self._handles.append(module.register_forward_pre_hook(
                    self._input_hook(source, parsed.index, module)))
            else:
                self._handles.append(
                    module.register_forward_hook(self._hook(source, parsed.index)))

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

    def _input_hook(self, source: str, index, module: nn.Module):
        inplace = bool(getattr(module, 'inplace', False))

        def hook(mod, inputs):
            if not self.active:
                return
            if index is None:
                if len(inputs) != 1:
                    raise TypeError(f'module {source!r} takes {len(inputs)} positional '
                                    f'inputs; pick one with {source}[i]')
                value = inputs[0]
            else:
                value = inputs[index]
            # Keep the value the module received, not what an in-place op makes of it.
            self.outputs[source] = value.clone() if inplace and torch.is_tensor(value) \
                else value
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


__all__ = ['FeatureRecorder', 'FeatureSource', 'SOURCE_KINDS', 'find_module',
           'parse_feature_source', 'parse_source']
