"""Global transforms: act on the whole tensor (Auto-KD's *global* family).

Element-wise ops accept any rank 2-4 (a rank-3 input is e.g. a Gram matrix); ops "over C"
use dim 1, "over N" dim 0, "over HW" the spatial dims of an (N, C, H, W) map (the last dim
of an (N, C, L) tensor).
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from kdzoo.registry import KD_TRANSFORMS
from ..base import EpsMixin, KnowledgeTransform, register_variants
from ._common import PairedRandomTransform

ANY_RANK = (2, 3, 4)


@KD_TRANSFORMS.register_module(name='no')
class Identity(KnowledgeTransform):
    """The no-op choice of a transform slot."""
    ranks = ANY_RANK
    formula = 'T(x) = x'
    source = 'Auto-KD (no-op slot)'

    def transform(self, x):
        return x


@KD_TRANSFORMS.register_module(name='bn')
class BatchNormTransform(EpsMixin, KnowledgeTransform):
    """Non-affine batch normalisation with the statistics of the current batch.

    Each channel (dim 1) is standardised over N (and the spatial dims) of the tensor it is
    applied to, in training and eval mode alike, so no running statistics are kept.
    """
    ranks = ANY_RANK
    formula = 'T(x) = (x - mean_{N,H,W}(x)) / sqrt(var_{N,H,W}(x) + eps), per channel'
    source = 'Auto-KD / UniADS (batchnorm)'
    eps = 1e-5

    def transform(self, x):
        return F.batch_norm(x, None, None, training=True, momentum=0.0, eps=self.eps)


class DimOp(KnowledgeTransform):
    """An op along C (dim 1), N (dim 0) or HW (the spatial dims, flattened): ``dim``."""
    dim: str = 'C'
    ranks = ANY_RANK

    def op(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        raise NotImplementedError  # abstract

    def transform(self, x):
        if self.dim == 'C':
            return self.op(x, 1)
        if self.dim == 'N':
            return self.op(x, 0)
        flat = x.flatten(2)  # (N, C, H*W)
        return self.op(flat, 2).view_as(x)


def register_dim_variants(base: type, prefix: str, formula: str, **overrides) -> List[type]:
    """Register ``{prefix}_C``, ``{prefix}_HW``, ``{prefix}_N``: the variants of a :class:`DimOp`.

    ``formula`` has an ``{over}`` field; ``overrides`` (keyed ``C``, ``HW``, ``N``) set
    further class attributes of one variant. ``HW`` needs a spatial dim: ranks 3, 4.
    """
    over = dict(C='C', HW='H*W', N='N')
    return register_variants(KD_TRANSFORMS, base, {
        f'{prefix}_{dim}': dict(cls_name=f'{base.__name__}{dim}', dim=dim,
                                ranks=(3, 4) if dim == 'HW' else ANY_RANK,
                                formula=formula.format(over=over[dim]),
                                **overrides.get(dim, {}))
        for dim in ('C', 'HW', 'N')
    })


class Norm(EpsMixin, DimOp):
    """L2 normalisation along ``dim``."""
    source = 'Auto-KD / UniADS (norm)'

    def op(self, x, dim):
        return F.normalize(x, p=2.0, dim=dim, eps=self.eps)


class Softmax(DimOp):
    """Softmax along ``dim``."""
    source = 'Auto-KD (softmax over a dim)'

    def op(self, x, dim):
        return F.softmax(x, dim=dim)


class LogSoftmax(DimOp):
    """Log-softmax along ``dim``."""
    source = 'Auto-KD (log-softmax over a dim)'

    def op(self, x, dim):
        return F.log_softmax(x, dim=dim)


NormC, NormHW, NormN = register_dim_variants(Norm, 'norm',
                                             'T(x) = x / max(||x||_2 over {over}, eps)')
SoftmaxC, SoftmaxHW, SoftmaxN = register_dim_variants(
    Softmax, 'softmax', 'T(x) = softmax(x) over {over}',
    HW=dict(source='Auto-KD (softmax over a dim); spatial distributions as in CWD'))
LogSoftmaxC, LogSoftmaxHW, LogSoftmaxN = register_dim_variants(
    LogSoftmax, 'logsoftmax', 'T(x) = log_softmax(x) over {over}')


class PerSampleScale(EpsMixin, KnowledgeTransform):
    """Per-sample affine scaling ``(x_n - loc_n) / (scale_n + eps)``; ``stats`` gives them."""
    ranks = ANY_RANK

    def stats(self, flat: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``loc, scale`` of shape ``(N, 1)`` from the flattened ``(N, D)`` input."""
        raise NotImplementedError  # abstract

    def transform(self, x):
        flat = x.flatten(1)
        loc, scale = self.stats(flat)
        return ((flat - loc) / (scale + self.eps)).view_as(x)


@KD_TRANSFORMS.register_module(name='minmax')
class MinMax(PerSampleScale):
    """Per-sample min-max scaling to [0, 1]."""
    formula = 'T(x)_n = (x_n - min(x_n)) / (max(x_n) - min(x_n) + eps), per sample n'
    source = 'Auto-KD (global normalisation)'
    eps = 1e-8

    def stats(self, flat):
        lo = flat.min(dim=1, keepdim=True).values
        hi = flat.max(dim=1, keepdim=True).values
        return lo, hi - lo


@KD_TRANSFORMS.register_module(name='standardize')
class Standardize(PerSampleScale):
    """Per-sample z-score, then division by a temperature ``t`` (logit standardisation).

    As in the official code of logit-standardisation KD (Sun et al., CVPR 2024):
    ``Z(x)_n = (x_n - mean(x_n)) / (std(x_n) + eps)`` with the *unbiased* std
    (``torch.std``'s default; the paper writes ``1/K``, pass ``unbiased=False`` for it) and
    ``eps=1e-7``, followed by ``/ t``. The z-score erases any scale, so the division by
    ``tau`` that a distill term applies *before* its transforms has no effect here: LS-KD
    with temperature ``tau`` is ``DistillTerm(transforms=[dict(type='standardize', t=tau)],
    distance='kl', tau=tau)`` (the term's ``tau`` then only contributes the ``tau^2``
    factor, as in the official ``kd_loss``).
    """
    formula = 'T(x)_n = (x_n - mean(x_n)) / ((std(x_n) + eps) * t), per sample n, unbiased std'
    source = 'Logit standardization KD (Sun et al., CVPR 2024)'
    eps = 1e-7

    def __init__(self, t: float = 1.0, unbiased: bool = True, eps: Optional[float] = None):
        super().__init__(eps=eps)
        if t <= 0:
            raise ValueError(f'standardize temperature t must be > 0, got {t}')
        self.t = float(t)
        self.unbiased = bool(unbiased)

    def stats(self, flat):
        std = flat.std(dim=1, keepdim=True, unbiased=self.unbiased)
        return flat.mean(dim=1, keepdim=True), std

    def transform(self, x):
        return super().transform(x) / self.t


class Elementwise(KnowledgeTransform):
    """An element-wise function ``op`` (a static method set by each variant)."""
    ranks = ANY_RANK

    @staticmethod
    def op(x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # set by each variant

    def transform(self, x):
        return self.op(x)


def signed_log(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


Tanh, Sigmoid, ReLU, Abs, SignedLog = register_variants(KD_TRANSFORMS, Elementwise, {
    'tanh': dict(cls_name='Tanh', op=staticmethod(torch.tanh), formula='T(x) = tanh(x)',
                 source='UniADS (tanh)'),
    'sigmoid': dict(cls_name='Sigmoid', op=staticmethod(torch.sigmoid),
                    formula='T(x) = 1 / (1 + exp(-x))', source='Auto-KD / UniADS (element-wise)'),
    'relu': dict(cls_name='ReLU', op=staticmethod(F.relu), formula='T(x) = max(x, 0)',
                 source='element-wise (post-ReLU feature matching)'),
    'abs': dict(cls_name='Abs', op=staticmethod(torch.abs), formula='T(x) = |x|',
                source='Auto-KD (element-wise)'),
    'log': dict(cls_name='SignedLog', op=staticmethod(signed_log),
                formula='T(x) = sign(x) * log(1 + |x|)', source='Auto-KD (element-wise)'),
})


@KD_TRANSFORMS.register_module(name='scale')
class Scale(KnowledgeTransform):
    """Multiply by a constant ``factor``."""
    ranks = ANY_RANK
    formula = 'T(x) = factor * x'
    source = 'UniADS (scale)'

    def __init__(self, factor: float = 1.0):
        super().__init__()
        self.factor = float(factor)

    def transform(self, x):
        return x * self.factor


@KD_TRANSFORMS.register_module(name='pow')
class Pow(KnowledgeTransform):
    """Plain power ``x**p`` (not sign-preserving; use an integer ``p`` for signed inputs)."""
    ranks = ANY_RANK
    formula = 'T(x) = x^p (p = 2 by default)'
    source = 'Auto-KD (element-wise); AT uses |x|^p'

    def __init__(self, p: float = 2.0):
        super().__init__()
        self.p = p

    def transform(self, x):
        return x.pow(self.p)


@KD_TRANSFORMS.register_module(name='sqrt')
class SignedSqrt(EpsMixin, KnowledgeTransform):
    ranks = ANY_RANK
    formula = 'T(x) = sign(x) * sqrt(|x| + eps)'
    source = 'Auto-KD (element-wise)'
    eps = 1e-6

    def transform(self, x):
        return torch.sign(x) * torch.sqrt(x.abs() + self.eps)


@KD_TRANSFORMS.register_module(name='flatten')
class Flatten(KnowledgeTransform):
    """Flatten every dim but the batch dim."""
    ranks = (3, 4)
    formula = 'T(x) = reshape(x, (N, -1))'
    shapes = '(N,C,H,W) -> (N,C*H*W); (N,C,L) -> (N,C*L)'
    source = 'FitNets-style vector matching'

    def output_rank(self, input_rank):
        return 2

    def transform(self, x):
        return x.flatten(1)


@KD_TRANSFORMS.register_module(name='mask')
class RandomMask(PairedRandomTransform):
    """Random spatial mask (keep probability ``ratio``), the same for student and teacher.

    (N, C, H, W): one Bernoulli(``ratio``) draw per sample and location, shared by all
    channels; (N, C): one draw per element. Not rescaled. Identity in eval mode.
    """
    ranks = (2, 4)
    formula = 'T(x) = m * x, m ~ Bernoulli(ratio) of shape (N,1,H,W) (or (N,C)), shared by s and t'
    source = 'Auto-KD (mask; large capacity gap)'
    ratio = 0.5

    def mask_shape(self, x):
        if x.dim() == 4:
            return (x.shape[0], 1, x.shape[2], x.shape[3])
        return tuple(x.shape)

    def sample_mask(self, x):
        return torch.bernoulli(torch.full(self.mask_shape(x), self.ratio, device=x.device,
                                          dtype=x.dtype))


@KD_TRANSFORMS.register_module(name='dropout')
class PairedDropout(PairedRandomTransform):
    """Element-wise dropout with keep probability ``ratio``, rescaled by ``1 / ratio``.

    The same dropout mask is applied to the student and the teacher of a step. Identity in
    eval mode.
    """
    ranks = ANY_RANK
    formula = 'T(x) = m * x / ratio, m ~ Bernoulli(ratio) element-wise, shared by s and t'
    source = 'Auto-KD (masking); dropout'
    ratio = 0.8

    def mask_shape(self, x):
        return tuple(x.shape)

    def sample_mask(self, x):
        keep = torch.full(self.mask_shape(x), self.ratio, device=x.device, dtype=x.dtype)
        return torch.bernoulli(keep) / self.ratio
