"""Distribution divergences between logits.

The inputs are *logits*: the distance applies the softmax over dim 1 itself. For inputs of
rank > 2, e.g. ``(N, C, H, W)``, every position holds one distribution over dim 1; the
per-position divergence (summed over dim 1) is averaged over N and the other positions.
For rank 2 that is the textbook batch mean ``1/N sum_n sum_i ...``. A distill term
multiplies by ``tau^2``; these distances do not.
"""
import math

import torch
import torch.nn.functional as F

from kdzoo.registry import DISTANCES
from ..base import Distance, register_variants


def _kl_from_log(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) summed over dim 1, per position; p, q given as log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


class KL(Distance):
    """KL divergence of the softmax distributions, batch mean: ``KL(p_t || p_s)`` (Hinton
    et al.'s soft targets), or ``KL(p_s || p_t)`` (mode-seeking) with ``reverse``."""
    reverse: bool = False

    def distance(self, s, t, **context):
        p, q = (s, t) if self.reverse else (t, s)
        return _kl_from_log(F.log_softmax(p, dim=1), F.log_softmax(q, dim=1)).mean()


KLDivergence, ReverseKLDivergence = register_variants(DISTANCES, KL, {
    'kl': dict(cls_name='KLDivergence', reverse=False,
               formula=('D(s, t) = mean_n sum_i p_t,i (log p_t,i - log p_s,i), '
                        'p = softmax over dim 1'),
               source='KD (Hinton et al. 2015); CWD after channel_dist'),
    'rkl': dict(cls_name='ReverseKLDivergence', reverse=True,
                formula='D(s, t) = mean_n sum_i p_s,i (log p_s,i - log p_t,i)',
                source='reverse KL (e.g. MiniLLM, Gu et al., ICLR 2024)'),
})


@DISTANCES.register_module(name='js')
class JSDivergence(Distance):
    """Jensen-Shannon divergence of the two softmax distributions, batch mean."""
    formula = 'D(s, t) = mean_n [KL(p_t || m) + KL(p_s || m)] / 2, m = (p_s + p_t) / 2'
    source = 'Jensen-Shannon divergence (symmetrised KL)'

    def distance(self, s, t, **context):
        log_ps = F.log_softmax(s, dim=1)
        log_pt = F.log_softmax(t, dim=1)
        log_m = torch.logaddexp(log_ps, log_pt) - math.log(2.0)
        return 0.5 * (_kl_from_log(log_pt, log_m) + _kl_from_log(log_ps, log_m)).mean()


@DISTANCES.register_module(name='soft_ce')
class SoftCrossEntropy(Distance):
    """Cross-entropy with the teacher's soft targets (KL plus the teacher's entropy)."""
    formula = 'D(s, t) = mean_n -sum_i p_t,i log p_s,i'
    source = 'KD (Hinton et al. 2015), soft-target cross-entropy'

    def distance(self, s, t, **context):
        return -(F.softmax(t, dim=1) * F.log_softmax(s, dim=1)).sum(dim=1).mean()
