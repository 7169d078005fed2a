"""Feature-map distances with their own weighting: VID's learned variance, ReviewKD's HCL."""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.registry import DISTANCES
from ..base import Distance, EpsMixin


@DISTANCES.register_module(name='vid')
class VIDDistance(EpsMixin, Distance):
    """VID (Ahn et al., CVPR 2019): Gaussian negative log-likelihood of the teacher feature
    under a mean predicted from the student and a learned per-channel variance.

    ``v_c = softplus(a_c) + eps``, ``D = mean 0.5 ((mu - t)^2 / v_c + log v_c)`` over all
    elements, as the official ``VIDLoss`` (its ``pred_mean`` is the student feature after a
    ``VIDRegressor`` connector). ``a`` is a learnable parameter of ``num_channels`` entries
    initialised so that ``v = init_var`` (5.0); ``num_channels=1`` shares one variance by
    all channels. Give the teacher's channels so that the variance is per channel, as in
    VID, and is in the model when the optimizer is built.
    """
    ranks = (2, 4)
    parametric = True
    formula = ('D(s, t) = mean 0.5 ((s - t)^2 / v_c + log v_c), v_c = softplus(a_c) + eps, '
               'a learned, v = init_var at the start')
    source = 'VID (Ahn et al., CVPR 2019)'
    eps = 1e-5

    def __init__(self, num_channels: int = 1, init_var: float = 5.0,
                 eps: Optional[float] = None):
        super().__init__(eps=eps)
        if int(num_channels) < 1:
            raise ValueError(f'vid num_channels must be >= 1, got {num_channels}')
        if init_var <= self.eps:
            raise ValueError(f'vid init_var must be > eps={self.eps}, got {init_var}')
        self.num_channels = int(num_channels)
        # the inverse softplus of init_var - eps, as in the official initialisation
        start = math.log(math.expm1(init_var - self.eps))
        self.log_scale = nn.Parameter(torch.full((self.num_channels, ), start))

    def variance(self) -> torch.Tensor:
        return F.softplus(self.log_scale) + self.eps

    def distance(self, s, t, **context):
        if self.num_channels not in (1, s.shape[1]):
            raise ValueError(f'vid has num_channels={self.num_channels} variances but the '
                             f'features have {s.shape[1]} channels (shape {tuple(s.shape)}); '
                             f'set num_channels={s.shape[1]}')
        var = self.variance().view(1, -1, *([1] * (s.dim() - 2))).to(s.dtype)
        return (0.5 * ((s - t).pow(2) / var + torch.log(var))).mean()


@DISTANCES.register_module(name='hcl')
class HCLDistance(Distance):
    """ReviewKD's hierarchical context loss (Chen et al., CVPR 2021), one level.

    The MSE of the maps plus the MSEs of their ``l x l`` average pools for ``l`` in
    ``levels`` (4, 2, 1) smaller than the map's height, weighted 1/2, 1/4, ...; the sum is
    divided by the total weight, as mdistiller's ``hcl_loss`` (which sums the levels: one
    distill term per level here). On ``(N, C)`` vectors (the pooled feature) it is the MSE.
    Linear warm-up ``min((epoch + 1) / warmup, 1)`` on the 0-based MMEngine epoch, i.e.
    mdistiller's ``min(epoch / 20, 1)`` with its 1-based epoch; ``warmup=0`` disables it.
    """
    ranks = (2, 4)
    formula = ('D(s, t) = warm * [mse(s, t) + sum_k 2^-k mse(pool_lk(s), pool_lk(t))] / '
               '(1 + sum_k 2^-k), l in (4, 2, 1) with l < H')
    source = 'ReviewKD (Chen et al., CVPR 2021): HCL'

    def __init__(self, levels=(4, 2, 1), warmup: int = 0):
        super().__init__()
        self.levels = tuple(int(level) for level in levels)
        if any(level < 1 for level in self.levels):
            raise ValueError(f'hcl levels must be >= 1, got {levels}')
        self.warmup = int(warmup)

    def distance(self, s, t, **context):
        loss = F.mse_loss(s, t)
        weight, total = 1.0, 1.0
        if s.dim() == 4:
            for level in self.levels:
                if level >= s.shape[2]:
                    continue
                weight /= 2.0
                loss = loss + weight * F.mse_loss(F.adaptive_avg_pool2d(s, level),
                                                  F.adaptive_avg_pool2d(t, level))
                total += weight
        epoch = context.get('epoch')
        warm = 1.0 if self.warmup <= 0 or epoch is None else \
            min((float(epoch) + 1.0) / self.warmup, 1.0)
        return warm * loss / total
