"""Distances between batch / channel relations: PKT and NST."""
import torch

from kdzoo.registry import DISTANCES
from ..base import Distance, EpsMixin


def pkt_probabilities(f: torch.Tensor, eps: float) -> torch.Tensor:
    """PKT's conditional probabilities: cosine similarities of the rows mapped to [0, 1]
    and normalised per row (the norm gets ``+ eps``, as in the official code)."""
    f = f.flatten(1)
    f = f / (f.norm(dim=1, keepdim=True) + eps)
    sim = (f @ f.t() + 1.0) / 2.0
    return sim / sim.sum(dim=1, keepdim=True)


@DISTANCES.register_module(name='pkt')
class PKTDistance(EpsMixin, Distance):
    """PKT (Passalis & Tefas, ECCV 2018): KL between the similarity-induced probabilities.

    ``P_ij = (cos(f_i, f_j) + 1) / 2``, normalised over ``j``, for the student and the
    teacher; the loss is the official ``mean(P_t * log((P_t + eps) / (P_s + eps)))``, a mean
    over all ``N^2`` entries (not a batch mean of row sums). Features are flattened; the
    relation is ``(N, N)`` whatever their width.
    """
    formula = ('D(s, t) = mean_ij P_t,ij log((P_t,ij + eps) / (P_s,ij + eps)), '
               'P_ij = (cos(f_i, f_j) + 1) / 2 normalised over j')
    source = 'PKT (Passalis & Tefas, ECCV 2018)'
    eps = 1e-7

    def distance(self, s, t, **context):
        p_s = pkt_probabilities(s, self.eps)
        p_t = pkt_probabilities(t, self.eps)
        return (p_t * torch.log((p_t + self.eps) / (p_s + self.eps))).mean()


def polynomial_kernel_mean(a: torch.Tensor, b: torch.Tensor, degree: float,
                           c: float) -> torch.Tensor:
    """``mean_{n,i,j} (<a_n,i, b_n,j> + c)^degree`` over the channels ``i`` of ``a`` and
    ``j`` of ``b`` of every sample ``n``; ``a``, ``b`` are ``(N, C, L)``."""
    return (torch.bmm(a, b.transpose(1, 2)) + c).pow(degree).mean()


@DISTANCES.register_module(name='mmd')
class MMDDistance(Distance):
    """Squared MMD between the channels of the student and teacher maps (NST).

    Each of the ``C`` channels of a sample, flattened over ``H*W``, is a point; the loss is
    ``MMD^2 = mean k(s, s) + mean k(t, t) - 2 mean k(s, t)`` with the polynomial kernel
    ``k(x, y) = (x^T y + c)^d`` (NST's choice: ``d = 2``, ``c = 0``), averaged over the
    samples and channel pairs. NST normalises each channel first: chain ``norm_HW``. The
    ``k(t, t)`` part does not depend on the student (the official ``full_loss``).
    """
    ranks = (3, 4)
    formula = ('D(s, t) = mean k(S,S) + mean k(T,T) - 2 mean k(S,T), k(x, y) = (x^T y + c)^d, '
               'points = channels over H*W; d = 2, c = 0')
    source = 'NST (Huang & Wang, 2017): MMD with a polynomial kernel'

    def __init__(self, degree: float = 2.0, c: float = 0.0):
        super().__init__()
        if degree <= 0:
            raise ValueError(f'mmd degree must be > 0, got {degree}')
        self.degree = float(degree)
        self.c = float(c)

    def distance(self, s, t, **context):
        s, t = s.flatten(2), t.flatten(2)
        k = polynomial_kernel_mean
        return (k(t, t, self.degree, self.c) + k(s, s, self.degree, self.c)
                - 2.0 * k(s, t, self.degree, self.c))
