"""Base classes and builders of the knowledge transforms T and distances D.

Every distill term computes ``tau^2 * weight * D(T(A_s / tau), T(A_t / tau))``. A transform
is a module applied to the (student, teacher) pair through :meth:`KnowledgeTransform.pair`;
a distance reduces the pair to a scalar. Both declare search metadata (family, accepted
input ranks, whether they have learnable parameters) so searchers can generate a search
space from the registries and reject an invalid chain before training starts.

Families of near-identical modules (``norm_C`` / ``norm_HW`` / ``norm_N``, ``pool1/2/4``,
...) are one class each; :func:`register_variants` registers one generated subclass per
name that only sets class attributes (the variant and its metadata).
"""
import difflib
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.registry import DefaultScope
from torch import nn

from kdzoo.registry import DISTANCES, KD_TRANSFORMS

#: Transform families of Auto-KD's search space (plus KDEP's alignment transforms).
FAMILIES = ('global', 'intra', 'inter', 'alignment')

ConfigLike = Union[str, dict]


class EpsMixin:
    """The ``eps`` argument of a module: a small constant for numerical safety.

    The default is the class attribute ``eps``; ``eps=None`` means that default. List the
    mixin before the module base, ``class Foo(EpsMixin, KnowledgeTransform)``; a subclass
    with more arguments calls ``super().__init__(eps=eps)``.
    """
    eps: float = 1e-12

    def __init__(self, eps: Optional[float] = None, **kwargs):
        super().__init__(**kwargs)
        self.eps = float(type(self).eps if eps is None else eps)


class KnowledgeTransform(nn.Module):
    """A knowledge transform T. Subclasses implement :meth:`transform`.

    A distill term applies T to the student and teacher tensors together with
    :meth:`pair`, which by default transforms each tensor on its own. Transforms that must
    treat the two together (one random draw for both, statistics updated from the teacher,
    the teacher aligned to the student's width) override :meth:`transform_pair`; they hold
    no hidden state about which call of a pair comes next. ``forward(x)`` transforms one
    tensor on its own.

    Class attributes (search metadata):
        family: one of :data:`FAMILIES`.
        ranks: input ranks accepted, e.g. ``(2, 4)`` for ``(N, C)`` and ``(N, C, H, W)``.
        parametric: has learnable parameters (searchers may exclude these).
        stateful: keeps state fitted on data (SVD basis, running stats) in buffers, so it
            is saved and restored with checkpoints.
        formula: the formula, as shown in ``docs/kd_library.md``.
        stochastic: random in training mode (``mask``, ``dropout``); :meth:`pair` applies
            one random draw to both the student and the teacher tensor.
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

    def pair(self, s: torch.Tensor, t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Transform a (student, teacher) pair: ``(T(s), T(t))``, or the pairwise version."""
        self.check_rank(s)
        self.check_rank(t)
        return self.transform_pair(s, t)

    def transform_pair(self, s: torch.Tensor,
                       t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pairwise transform, after the rank checks; the default treats each on its own."""
        return self.transform(s), self.transform(t)

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


def register_variants(registry, base: type, variants: Dict[str, dict]) -> List[type]:
    """Register the variants of one implementation under their registry names.

    ``variants`` maps each registry name to the class attributes of its variant (e.g.
    ``dim='HW'`` plus its ``ranks`` and ``formula``); the ``cls_name`` entry names the
    generated subclass of ``base`` (shown in error messages; the caller binds it in its
    module). The subclasses only set those attributes, so their metadata is per name and
    their code is ``base``'s. Returns the classes in the order of ``variants``.
    """
    classes = []
    for name, attrs in variants.items():
        attrs = dict(attrs)
        cls_name = attrs.pop('cls_name')
        summary = (base.__doc__ or base.__name__).strip().splitlines()[0]
        attrs.setdefault('__doc__', f'``{name}``: {summary}')
        attrs.update(__module__=base.__module__, __qualname__=cls_name)
        cls = type(cls_name, (base, ), attrs)
        registry.register_module(name=name, module=cls)
        classes.append(cls)
    return classes


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


def aliases(registry) -> Dict[str, str]:
    """``{alias: name}`` for the registry names bound to the same class as an earlier name
    (e.g. ``{'mse': 'l2'}``, from ``register_module(name=['l2', 'mse'])``)."""
    registry.import_from_location()
    first: Dict[type, str] = {}
    out = {}
    for name, cls in registry.module_dict.items():
        if cls in first:
            out[name] = first[cls]
        else:
            first[cls] = name
    return out


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
