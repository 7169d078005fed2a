"""Relational transforms of RKD (Park et al., CVPR 2019): structure within the batch.

Both map a batch of embeddings ``(N, D)`` (pooled features; chain ``flatten`` first for
maps) to a relation that does not depend on D, so student and teacher may differ in width.
Followed by ``smooth_l1`` they are RKD's distance-wise and angle-wise losses; RKD is the two
terms on the same feature with their own weights (25 and 50 in RepDistiller / mdistiller).
They accept rank 2 only, which keeps them out of the rank-4 and logit search spaces.
"""
import torch
import torch.nn.functional as F

from kdzoo.registry import KD_TRANSFORMS
from ..base import EpsMixin, KnowledgeTransform


def pairwise_distances(e: torch.Tensor, eps: float) -> torch.Tensor:
    """Euclidean distances of the rows of ``e`` as RKD's code computes them: the squared
    distance clamped at ``eps`` before the square root, and a zero diagonal."""
    sq = e.pow(2).sum(dim=1)
    d2 = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * e @ e.t()).clamp(min=eps)
    off_diagonal = ~torch.eye(e.shape[0], dtype=torch.bool, device=e.device)
    return d2.sqrt() * off_diagonal


@KD_TRANSFORMS.register_module(name='rkd_distance')
class RKDDistance(EpsMixin, KnowledgeTransform):
    """RKD's distance-wise potential: pairwise distances divided by their mean.

    ``psi_D(t_i, t_j) = ||t_i - t_j||_2 / mu`` with ``mu`` the mean over the pairs with a
    positive distance (the off-diagonal ones), as in the official ``RKDLoss``.
    """
    family = 'inter'
    ranks = (2, )
    formula = 'T(f)_ij = ||f_i - f_j||_2 / mean_{d_kl > 0} d_kl, d = pairwise distances'
    shapes = '(N,D) -> (N,N)'
    source = 'RKD (Park et al., CVPR 2019): distance-wise'
    eps = 1e-12

    def transform(self, x):
        d = pairwise_distances(x, self.eps)
        return d / d[d > 0].mean()


@KD_TRANSFORMS.register_module(name='rkd_angle')
class RKDAngle(EpsMixin, KnowledgeTransform):
    """RKD's angle-wise potential: the cosine of the angle at ``f_i`` between ``f_j`` and
    ``f_k``, ``<e_ij, e_ik>`` with ``e_ij = normalize(f_j - f_i)`` (0 where ``j = i``)."""
    family = 'inter'
    ranks = (2, )
    formula = 'T(f)_ijk = <normalize(f_j - f_i), normalize(f_k - f_i)>'
    shapes = '(N,D) -> (N,N,N)'
    source = 'RKD (Park et al., CVPR 2019): angle-wise'
    eps = 1e-12

    def output_rank(self, input_rank):
        return 3

    def transform(self, x):
        diff = F.normalize(x.unsqueeze(0) - x.unsqueeze(1), p=2.0, dim=2, eps=self.eps)
        return torch.bmm(diff, diff.transpose(1, 2))
