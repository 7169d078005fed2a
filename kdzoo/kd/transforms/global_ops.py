"""Global transforms: act on the whole tensor (Auto-KD's *global* family).

Element-wise ops accept any rank 2-4 (a rank-3 input is e.g. a Gram matrix); ops "over C"
use dim 1, "over N" dim 0, "over HW" the spatial dims of an (N, C, H, W) map (the last dim
of an (N, C, L) tensor).
"""
import torch
import torch.nn.functional as F

from kdzoo.registry import KD_TRANSFORMS
from ..base import KnowledgeTransform
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
class BatchNormTransform(KnowledgeTransform):
    """Non-affine batch normalisation with the statistics of the current batch.

    Each channel (dim 1) is standardised over N (and the spatial dims) of the tensor it is
    applied to, in training and eval mode alike, so no running statistics are kept.
    """
    ranks = ANY_RANK
    formula = 'T(x) = (x - mean_{N,H,W}(x)) / sqrt(var_{N,H,W}(x) + eps), per channel'
    source = 'Auto-KD / UniADS (batchnorm)'

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = float(eps)

    def transform(self, x):
        return F.batch_norm(x, None, None, training=True, momentum=0.0, eps=self.eps)


class _DimOp(KnowledgeTransform):
    """An op along C (dim 1), N (dim 0) or HW (the spatial dims, flattened)."""
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


class _Norm(_DimOp):
    source = 'Auto-KD / UniADS (norm)'

    def __init__(self, eps: float = 1e-12):
        super().__init__()
        self.eps = float(eps)

    def op(self, x, dim):
        return F.normalize(x, p=2.0, dim=dim, eps=self.eps)


@KD_TRANSFORMS.register_module(name='norm_C')
class NormC(_Norm):
    """L2 normalisation over the channel dim."""
    dim = 'C'
    formula = 'T(x) = x / max(||x||_2 over C, eps)'


@KD_TRANSFORMS.register_module(name='norm_HW')
class NormHW(_Norm):
    """L2 normalisation over the spatial positions of each (sample, channel)."""
    dim, ranks = 'HW', (3, 4)
    formula = 'T(x) = x / max(||x||_2 over H*W, eps)'


@KD_TRANSFORMS.register_module(name='norm_N')
class NormN(_Norm):
    """L2 normalisation over the batch dim."""
    dim = 'N'
    formula = 'T(x) = x / max(||x||_2 over N, eps)'


class _Softmax(_DimOp):
    source = 'Auto-KD (softmax over a dim)'

    def op(self, x, dim):
        return F.softmax(x, dim=dim)


@KD_TRANSFORMS.register_module(name='softmax_C')
class SoftmaxC(_Softmax):
    dim = 'C'
    formula = 'T(x) = softmax(x) over C'


@KD_TRANSFORMS.register_module(name='softmax_HW')
class SoftmaxHW(_Softmax):
    dim, ranks = 'HW', (3, 4)
    formula = 'T(x) = softmax(x) over H*W'
    source = 'Auto-KD (softmax over a dim); spatial distributions as in CWD'


@KD_TRANSFORMS.register_module(name='softmax_N')
class SoftmaxN(_Softmax):
    dim = 'N'
    formula = 'T(x) = softmax(x) over N'


class _LogSoftmax(_DimOp):
    source = 'Auto-KD (log-softmax over a dim)'

    def op(self, x, dim):
        return F.log_softmax(x, dim=dim)


@KD_TRANSFORMS.register_module(name='logsoftmax_C')
class LogSoftmaxC(_LogSoftmax):
    dim = 'C'
    formula = 'T(x) = log_softmax(x) over C'


@KD_TRANSFORMS.register_module(name='logsoftmax_HW')
class LogSoftmaxHW(_LogSoftmax):
    dim, ranks = 'HW', (3, 4)
    formula = 'T(x) = log_softmax(x) over H*W'


@KD_TRANSFORMS.register_module(name='logsoftmax_N')
class LogSoftmaxN(_LogSoftmax):
    dim = 'N'
    formula = 'T(x) = log_softmax(x) over N'


@KD_TRANSFORMS.register_module(name='minmax')
class MinMax(KnowledgeTransform):
    """Per-sample min-max scaling to [0, 1]."""
    ranks = ANY_RANK
    formula = 'T(x)_n = (x_n - min(x_n)) / (max(x_n) - min(x_n) + eps), per sample n'
    source = 'Auto-KD (global normalisation)'

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = float(eps)

    def transform(self, x):
        flat = x.flatten(1)
        lo = flat.min(dim=1, keepdim=True).values
        hi = flat.max(dim=1, keepdim=True).values
        return ((flat - lo) / (hi - lo + self.eps)).view_as(x)


@KD_TRANSFORMS.register_module(name='standardize')
class Standardize(KnowledgeTransform):
    """Per-sample z-score (logit standardisation, Sun et al. CVPR 2024)."""
    ranks = ANY_RANK
    formula = 'T(x)_n = (x_n - mean(x_n)) / (std(x_n) + eps), per sample n'
    source = 'Logit standardization KD (Sun et al., CVPR 2024)'

    def __init__(self, eps: float = 1e-7):
        super().__init__()
        self.eps = float(eps)

    def transform(self, x):
        flat = x.flatten(1)
        mean = flat.mean(dim=1, keepdim=True)
        std = flat.std(dim=1, keepdim=True, unbiased=False)
        return ((flat - mean) / (std + self.eps)).view_as(x)


@KD_TRANSFORMS.register_module(name='tanh')
class Tanh(KnowledgeTransform):
    ranks = ANY_RANK
    formula = 'T(x) = tanh(x)'
    source = 'UniADS (tanh)'

    def transform(self, x):
        return torch.tanh(x)


@KD_TRANSFORMS.register_module(name='sigmoid')
class Sigmoid(KnowledgeTransform):
    ranks = ANY_RANK
    formula = 'T(x) = 1 / (1 + exp(-x))'
    source = 'Auto-KD / UniADS (element-wise)'

    def transform(self, x):
        return torch.sigmoid(x)


@KD_TRANSFORMS.register_module(name='relu')
class ReLU(KnowledgeTransform):
    ranks = ANY_RANK
    formula = 'T(x) = max(x, 0)'
    source = 'element-wise (post-ReLU feature matching)'

    def transform(self, x):
        return F.relu(x)


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


@KD_TRANSFORMS.register_module(name='abs')
class Abs(KnowledgeTransform):
    ranks = ANY_RANK
    formula = 'T(x) = |x|'
    source = 'Auto-KD (element-wise)'

    def transform(self, x):
        return x.abs()


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
class SignedSqrt(KnowledgeTransform):
    ranks = ANY_RANK
    formula = 'T(x) = sign(x) * sqrt(|x| + eps)'
    source = 'Auto-KD (element-wise)'

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = float(eps)

    def transform(self, x):
        return torch.sign(x) * torch.sqrt(x.abs() + self.eps)


@KD_TRANSFORMS.register_module(name='log')
class SignedLog(KnowledgeTransform):
    ranks = ANY_RANK
    formula = 'T(x) = sign(x) * log(1 + |x|)'
    source = 'Auto-KD (element-wise)'

    def transform(self, x):
        return torch.sign(x) * torch.log1p(x.abs())


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
    source = 'Auto-KD (mask; large capacity gap), MGD-style random masking'

    def __init__(self, ratio: float = 0.5):
        super().__init__()
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f'mask keep ratio must be in (0, 1], got {ratio}')
        self.ratio = float(ratio)

    def mask_shape(self, x):
        if x.dim() == 4:
            return (x.shape[0], 1, x.shape[2], x.shape[3])
        return tuple(x.shape)

    def sample_mask(self, x):
        return torch.bernoulli(torch.full(self.mask_shape(x), self.ratio, device=x.device,
                                          dtype=x.dtype))

    def transform(self, x):
        if not self.training or self.ratio >= 1.0:
            return x
        return x * self.paired_mask(x)


@KD_TRANSFORMS.register_module(name='dropout')
class PairedDropout(PairedRandomTransform):
    """Element-wise dropout with keep probability ``ratio``, rescaled by ``1 / ratio``.

    The same dropout mask is applied to the student and the teacher of a step. Identity in
    eval mode.
    """
    ranks = ANY_RANK
    formula = 'T(x) = m * x / ratio, m ~ Bernoulli(ratio) element-wise, shared by s and t'
    source = 'Auto-KD (masking); dropout'

    def __init__(self, ratio: float = 0.8):
        super().__init__()
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f'dropout keep ratio must be in (0, 1], got {ratio}')
        self.ratio = float(ratio)

    def mask_shape(self, x):
        return tuple(x.shape)

    def sample_mask(self, x):
        keep = torch.full(self.mask_shape(x), self.ratio, device=x.device, dtype=x.dtype)
        return torch.bernoulli(keep) / self.ratio

    def transform(self, x):
        if not self.training or self.ratio >= 1.0:
            return x
        return x * self.paired_mask(x)
