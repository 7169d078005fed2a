"""Attention transforms (Auto-KD puts attention-style re-weighting in the *global* family)."""
from typing import Optional

import torch
import torch.nn.functional as F

from kdzoo.registry import KD_TRANSFORMS
from ..base import EpsMixin, KnowledgeTransform, register_variants


class Attention(EpsMixin, KnowledgeTransform):
    """Attention map ``mean |f|^p`` over ``over`` ('C' or 'HW'), L2-normalised per sample.

    Over C it is the spatial attention map of Attention Transfer (Zagoruyko & Komodakis,
    ICLR 2017), ``(N, C, H, W) -> (N, H*W)``; followed by the ``l2`` distance it is AT's
    loss ``mean((a_s - a_t)^2)`` (the ``at`` distance). Over HW it is one value per channel.
    ``|f|^p`` is the paper's ``F^p_sum``; the official code (and mdistiller) computes
    ``f.pow(p)``, the same for the default ``p = 2``.
    """
    ranks = (3, 4)
    over: str = 'C'

    def __init__(self, p: float = 2.0, eps: Optional[float] = None):
        super().__init__(eps=eps)
        self.p = float(p)

    def output_rank(self, input_rank):
        return 2

    def transform(self, x):
        energy = x.abs().pow(self.p)
        if self.over == 'C':
            att = energy.mean(dim=1).flatten(1)
        else:
            att = energy.flatten(2).mean(dim=2)
        return F.normalize(att, p=2.0, dim=1, eps=self.eps)


SpatialAttention, ChannelAttention = register_variants(KD_TRANSFORMS, Attention, {
    'satt': dict(cls_name='SpatialAttention', over='C',
                 formula='T(f) = normalize_2(vec(mean_C |f|^p)), p = 2',
                 shapes='(N,C,H,W) -> (N,H*W); (N,C,L) -> (N,L)',
                 source='AT (Zagoruyko & Komodakis, ICLR 2017)'),
    'catt': dict(cls_name='ChannelAttention', over='HW',
                 formula='T(f) = normalize_2(mean_HW |f|^p), p = 2',
                 shapes='(N,C,H,W) -> (N,C)',
                 source='Auto-KD (channel attention); AT applied along channels'),
})


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
