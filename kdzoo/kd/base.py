"""Base classes and builders of the knowledge transforms T and distances D.

Every distill term computes ``tau^2 * weight * D(T(A_s / tau), T(A_t / tau))``. A transform
is a module applied identically to the student and teacher tensors; a distance reduces the
pair to a scalar. Both declare search metadata (family, accepted input ranks, whether they
have learnable parameters) so searchers can generate a search space from the registries and
reject an invalid chain before training starts.
"""
import difflib
from typing import Dict, Sequence, Tuple, Union

import torch
from mmengine.registry import DefaultScope
from torch import nn

from kdzoo.registry import DISTANCES, KD_TRANSFORMS

#: Transform families of Auto-KD's search space (plus KDEP's alignment transforms).
FAMILIES = ('global', 'intra', 'inter', 'alignment')

ConfigLike = Union[str, dict]


class KnowledgeTransform(nn.Module):
    """A knowledge transform T. Subclasses implement :meth:`transform`.

    Class attributes (search metadata):
        family: one of :data:`FAMILIES`.
        ranks: input ranks accepted, e.g. ``(2, 4)`` for ``(N, C)`` and ``(N, C, H, W)``.
        parametric: has learnable parameters (searchers may exclude these).
        stateful: keeps state fitted on data (SVD basis, running stats) in buffers, so it
            is saved and restored with checkpoints.
        formula: the formula, as shown in ``docs/kd_library.md``.
        stochastic: random in training mode (``mask``, ``dropout``); one random draw is
            shared by the student and teacher calls of a step.
        shapes: input -> output shapes, for the docs.
        source: the method / paper it comes from.
    """
    family: str = 'global'
    ranks: Tuple[int, ...] = (2, 4)
    parametric: bool = False
    stateful: bool = False
    formula: str = ''
    stochastic: bool = False
    shapes: str = 'same shape'
    source: str = ''

    def output_rank(self, input_rank: int) -> int:
        """Rank of the output for an input of ``input_rank`` (same rank by default)."""
        return input_rank

    def check_rank(self, x: torch.Tensor) -> None:
        if x.dim() not in self.ranks:
            raise ValueError(
                f'KD transform {type(self).__name__!r} accepts inputs of rank '
                f'{list(self.ranks)}, got a tensor of shape {tuple(x.shape)}')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_rank(x)
        return self.transform(x)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # abstract

    @classmethod
    def metadata(cls) -> dict:
        return dict(family=cls.family, ranks=tuple(cls.ranks), parametric=cls.parametric,
                    stateful=cls.stateful, formula=cls.formula, stochastic=cls.stochastic,
                    shapes=cls.shapes, source=cls.source)


class Distance(nn.Module):
    """A distance D between transformed student and teacher tensors; returns a scalar.

    ``forward(s, t, **context)`` receives keyword context from the distiller:
    ``gt_labels`` (class labels when the task has them), ``iter`` and ``epoch``.

    Class attributes:
        ranks: input ranks accepted.
        needs_labels: requires ``gt_labels`` in the context (e.g. DKD).
        parametric: has learnable parameters.
        formula: the formula, as shown in ``docs/kd_library.md``.
        source: the method / paper it comes from.
    """
    ranks: Tuple[int, ...] = (2, 3, 4)
    needs_labels: bool = False
    parametric: bool = False
    formula: str = ''
    source: str = ''

    def check_inputs(self, s: torch.Tensor, t: torch.Tensor) -> None:
        if s.shape != t.shape:
            raise ValueError(f'distance {type(self).__name__!r} needs equal shapes, got '
                             f'student {tuple(s.shape)} and teacher {tuple(t.shape)}')
        if s.dim() not in self.ranks:
            raise ValueError(f'distance {type(self).__name__!r} accepts inputs of rank '
                             f'{list(self.ranks)}, got shape {tuple(s.shape)}')

    def forward(self, s: torch.Tensor, t: torch.Tensor, **context) -> torch.Tensor:
        self.check_inputs(s, t)
        return self.distance(s, t, **context)

    def distance(self, s: torch.Tensor, t: torch.Tensor, **context) -> torch.Tensor:
        raise NotImplementedError  # abstract

    @classmethod
    def metadata(cls) -> dict:
        return dict(ranks=tuple(cls.ranks), needs_labels=cls.needs_labels,
                    parametric=cls.parametric, formula=cls.formula, source=cls.source)


def _unknown_name_error(kind: str, name: str, registry) -> KeyError:
    names = sorted(registry.module_dict)
    close = difflib.get_close_matches(name, names, n=3)
    hint = f' Did you mean {close}?' if close else ''
    return KeyError(f'unknown {kind} {name!r}.{hint} Valid names: {", ".join(names)}')


def _build(kind: str, registry, cfg: ConfigLike) -> nn.Module:
    registry.import_from_location()
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    elif isinstance(cfg, nn.Module):
        return cfg
    elif not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'a {kind} is a registry name or a dict with a "type" key, got {cfg!r}')
    cfg = dict(cfg)
    name = cfg['type']
    if isinstance(name, str) and registry.get(name) is None:
        raise _unknown_name_error(kind, name, registry)
    try:
        # kdzoo's own registries, also when the run's default scope is mmdet / mmseg.
        with DefaultScope.overwrite_default_scope('kdzoo'):
            return registry.build(cfg)
    except TypeError as err:
        raise TypeError(f'bad arguments for {kind} {name!r}: {err}') from err


def build_transform(cfg: ConfigLike) -> KnowledgeTransform:
    """Build one knowledge transform from a registry name or a config dict."""
    return _build('KD transform', KD_TRANSFORMS, cfg)


def build_distance(cfg: ConfigLike) -> Distance:
    """Build a distance from a registry name or a config dict."""
    return _build('distance', DISTANCES, cfg)


def check_chain(transforms: Sequence[KnowledgeTransform], distance: Distance,
                input_rank: int) -> None:
    """Reject a transform chain + distance that cannot take a tensor of ``input_rank``.

    Called when a term is built (before training) and by searchers to filter candidates.
    """
    rank = input_rank
    for i, transform in enumerate(transforms):
        if rank not in transform.ranks:
            raise ValueError(
                f'transform #{i} {type(transform).__name__!r} accepts ranks '
                f'{list(transform.ranks)} but receives rank {rank} (input rank '
                f'{input_rank})')
        rank = transform.output_rank(rank)
    if rank not in distance.ranks:
        raise ValueError(f'distance {type(distance).__name__!r} accepts ranks '
                         f'{list(distance.ranks)} but the transform chain outputs rank {rank}')


def registered(registry, **filters) -> Dict[str, type]:
    """Registered classes whose metadata matches ``filters``.

    Example: ``registered(KD_TRANSFORMS, family='inter', parametric=False)``; a filter value
    that is a list/tuple/set matches any of its items; ``rank=4`` keeps classes accepting 4.
    """
    registry.import_from_location()
    out = {}
    for name, cls in registry.module_dict.items():
        meta = cls.metadata() if hasattr(cls, 'metadata') else {}
        keep = True
        for key, wanted in filters.items():
            if key == 'rank':
                keep &= wanted in meta.get('ranks', ())
            elif isinstance(wanted, (list, tuple, set)):
                keep &= meta.get(key) in wanted
            else:
                keep &= meta.get(key) == wanted
        if keep:
            out[name] = cls
    return dict(sorted(out.items()))
