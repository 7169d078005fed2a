"""Element-wise regression distances (mean over all elements)."""
import torch.nn.functional as F

from kdzoo.registry import DISTANCES
from ..base import Distance


@DISTANCES.register_module(name='l1')
class L1Distance(Distance):
    formula = 'D(s, t) = mean |s - t|'
    source = 'Auto-KD (L1)'

    def distance(self, s, t, **context):
        return (s - t).abs().mean()


@DISTANCES.register_module(name=['l2', 'mse'])
class L2Distance(Distance):
    """Mean squared error (``mse`` is an alias); with no transform it is FitNets' hint loss,
    after ``satt`` AT's."""
    formula = 'D(s, t) = mean (s - t)^2'
    source = 'FitNets (Romero et al. 2015); Auto-KD / UniADS (L2)'

    def distance(self, s, t, **context):
        return (s - t).pow(2).mean()


@DISTANCES.register_module(name='smooth_l1')
class SmoothL1Distance(Distance):
    """Huber-style smooth L1 with threshold ``beta``, mean over all elements."""
    formula = 'D(s, t) = mean( 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta ), d = s - t'
    source = 'Auto-KD (smooth-L1)'

    def __init__(self, beta: float = 1.0):
        super().__init__()
        if beta < 0:
            raise ValueError(f'smooth_l1 beta must be >= 0, got {beta}')
        self.beta = float(beta)

    def distance(self, s, t, **context):
        return F.smooth_l1_loss(s, t, reduction='mean', beta=self.beta)
