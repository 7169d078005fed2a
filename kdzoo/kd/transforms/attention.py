"""Attention transforms (Auto-KD puts attention-style re-weighting in the *global* family)."""
import torch
import torch.nn.functional as F

from kdzoo.registry import KD_TRANSFORMS
from ..base import KnowledgeTransform


@KD_TRANSFORMS.register_module(name='satt')
class SpatialAttention(KnowledgeTransform):
    """Spatial attention map of Attention Transfer (Zagoruyko & Komodakis, ICLR 2017).

    ``a = mean_C |f|^p`` flattened to ``(N, H*W)`` and L2-normalised per sample; followed by
    the ``l2`` distance it is AT's loss ``mean((a_s - a_t)^2)``.
    """
    ranks = (3, 4)
    formula = 'T(f) = normalize_2(vec(mean_C |f|^p)), p = 2'
    shapes = '(N,C,H,W) -> (N,H*W); (N,C,L) -> (N,L)'
    source = 'AT (Zagoruyko & Komodakis, ICLR 2017)'

    def __init__(self, p: float = 2.0, eps: float = 1e-12):
        super().__init__()
        self.p = float(p)
        self.eps = float(eps)

    def output_rank(self, input_rank):
        return 2

    def transform(self, x):
        att = x.abs().pow(self.p).mean(dim=1).flatten(1)
        return F.normalize(att, p=2.0, dim=1, eps=self.eps)


@KD_TRANSFORMS.register_module(name='catt')
class ChannelAttention(KnowledgeTransform):
    """Channel attention: ``mean_HW |f|^p`` per channel, L2-normalised per sample."""
    ranks = (3, 4)
    formula = 'T(f) = normalize_2(mean_HW |f|^p), p = 2'
    shapes = '(N,C,H,W) -> (N,C)'
    source = 'Auto-KD (channel attention); AT applied along channels'

    def __init__(self, p: float = 2.0, eps: float = 1e-12):
        super().__init__()
        self.p = float(p)
        self.eps = float(eps)

    def output_rank(self, input_rank):
        return 2

    def transform(self, x):
        att = x.abs().pow(self.p).flatten(2).mean(dim=2)
        return F.normalize(att, p=2.0, dim=1, eps=self.eps)


@KD_TRANSFORMS.register_module(name='natt')
class SampleAttention(KnowledgeTransform):
    """Sample attention: re-weights the samples of the batch by their energy.

    ``e_n = mean(f_n^2)``, ``w = N * softmax_N(e / t)`` (so the weights average to 1), and
    ``T(f)_n = w_n * f_n``. Student and teacher are each weighted by their own energies.
    """
    ranks = (2, 3, 4)
    formula = 'T(f)_n = N * softmax_N(mean(f^2) / t)_n * f_n'
    source = 'Auto-KD (attention-style re-weighting over samples)'

    def __init__(self, t: float = 1.0):
        super().__init__()
        if t <= 0:
            raise ValueError(f'natt temperature t must be > 0, got {t}')
        self.t = float(t)

    def transform(self, x):
        energy = x.pow(2).flatten(1).mean(dim=1)
        weight = x.shape[0] * torch.softmax(energy / self.t, dim=0)
        return x * weight.view(-1, *([1] * (x.dim() - 1)))
