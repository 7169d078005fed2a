"""Similarity / correlation based distances.

Tensors are compared per sample after flattening every dim but the batch dim, unless a
distance says otherwise: ``s, t -> S, T`` of shape ``(N, D)``.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from kdzoo.registry import DISTANCES
from ..base import Distance, EpsMixin
from ..transforms.attention import SpatialAttention


def pearson_rows(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of matching rows of two ``(N, D)`` matrices -> ``(N,)``."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return F.cosine_similarity(a, b, dim=1, eps=eps)


def linear_cka(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Linear CKA (Kornblith et al. 2019) between ``x (m, ...)`` and ``y (m, ...)``.

    Both are flattened to ``(m, p)`` and ``(m, q)`` (``p`` and ``q`` may differ). With
    column-centred ``X, Y``: ``CKA = <X X^T, Y Y^T>_F / (||X X^T||_F ||Y Y^T||_F)``, equal to
    ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with ``K = X X^T``, ``L = Y Y^T`` and
    ``HSIC(K, L) = tr(K H L H) / (m-1)^2``. Computed through the ``m x m`` Gram matrices, so
    the cost is ``O(m^2 (p + q))``. Returns a 0-dim tensor in [0, 1] (differentiable).
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f'linear_cka needs the same number of samples, got {x.shape[0]} '
                         f'and {y.shape[0]}')
    xc = x.flatten(1)
    yc = y.flatten(1)
    xc = xc - xc.mean(dim=0, keepdim=True)
    yc = yc - yc.mean(dim=0, keepdim=True)
    k = xc @ xc.t()
    l = yc @ yc.t()  # noqa: E741
    return (k * l).sum() / (k.norm() * l.norm() + eps)


@DISTANCES.register_module(name='cosine')
class CosineDistance(EpsMixin, Distance):
    formula = 'D(s, t) = mean_n (1 - <S_n, T_n> / (||S_n|| ||T_n||))'
    source = 'Auto-KD / UniADS (cosine)'
    eps = 1e-8

    def distance(self, s, t, **context):
        return 1.0 - F.cosine_similarity(s.flatten(1), t.flatten(1), dim=1, eps=self.eps).mean()


@DISTANCES.register_module(name='pearson')
class PearsonDistance(EpsMixin, Distance):
    """1 - Pearson correlation between each sample's flattened student and teacher vectors.

    The correlation of sample ``n`` runs over all values of that sample (``C`` for
    ``(N, C)``, ``C*H*W`` for ``(N, C, H, W)``), then ``1 - r`` is averaged over the batch.
    Invariant to a per-sample shift and positive scale of either input. After
    ``softmax_C`` on ``(N, C)`` logits this is DIST's *inter-class* relation (the Pearson
    correlation of each sample's class probabilities, i.e. of the rows of the ``(N, C)``
    matrix); DIST's intra-class relation is the same on the columns (see ``dist``).
    ``eps`` guards the norms as in :func:`torch.nn.functional.cosine_similarity` (DIST's code
    adds it to their product instead; the two differ only for near-constant rows).
    """
    formula = 'D(s, t) = mean_n (1 - pearson(S_n, T_n)), S_n = all values of sample n'
    source = 'Auto-KD (Pearson / correlation); DIST (Huang et al. 2022) inter-class relation'
    eps = 1e-8

    def distance(self, s, t, **context):
        return 1.0 - pearson_rows(s.flatten(1), t.flatten(1), self.eps).mean()


@DISTANCES.register_module(name='dist')
class DISTDistance(EpsMixin, Distance):
    """DIST (Huang et al., NeurIPS 2022) on ``(N, C)`` logits, as in its official code.

    ``Y = softmax(x)`` over classes (the term has already divided the logits by ``tau``).
    *Inter-class* relation (weight ``beta``): ``1 - mean_n pearson(Y_s[n], Y_t[n])``, the
    Pearson correlation over the classes of each sample (the rows of ``Y``).
    *Intra-class* relation (weight ``gamma``): ``1 - mean_c pearson(Y_s[:, c], Y_t[:, c])``,
    the Pearson correlation over the batch of each class (the columns of ``Y``).
    DIST's ``tau^2`` factor comes from the distill term: ``DistillTerm(distance=dict(
    type='dist', beta=b, gamma=g), tau=tau)`` computes ``tau^2 * (b * inter + g * intra)``
    on ``softmax(z / tau)``, which is exactly the official ``DIST(beta=b, gamma=g, tau=tau)``
    loss (``weight`` multiplies it further).
    """
    ranks = (2, )
    formula = ('D(s, t) = beta (1 - mean_n pearson_C(Y_s[n,:], Y_t[n,:])) '
               '+ gamma (1 - mean_c pearson_N(Y_s[:,c], Y_t[:,c])), Y = softmax over C; '
               'beta: inter-class (rows), gamma: intra-class (columns)')
    source = 'DIST (Huang et al., NeurIPS 2022)'
    eps = 1e-8

    def __init__(self, beta: float = 1.0, gamma: float = 1.0, eps: Optional[float] = None):
        super().__init__(eps=eps)
        self.beta = float(beta)
        self.gamma = float(gamma)

    def distance(self, s, t, **context):
        ys = F.softmax(s, dim=1)
        yt = F.softmax(t, dim=1)
        inter = 1.0 - pearson_rows(ys, yt, self.eps).mean()          # over classes, per sample
        intra = 1.0 - pearson_rows(ys.t(), yt.t(), self.eps).mean()  # over the batch, per class
        return self.beta * inter + self.gamma * intra


@DISTANCES.register_module(name='barlow')
class BarlowTwinsDistance(EpsMixin, Distance):
    """Barlow-Twins-style cross-correlation between student and teacher features.

    ``Z_s, Z_t``: ``(N, D)`` features standardised per dim over the batch (biased std);
    ``c = Z_s^T Z_t / N`` (``D x D``). Loss ``(sum_i (1 - c_ii)^2 + lambda sum_{i!=j}
    c_ij^2) / D``. The off-diagonal sum is computed via ``||c||_F^2 = <Z_s Z_s^T, Z_t
    Z_t^T>_F / N^2`` so ``c`` is never formed (cost ``O(N^2 D)``).

    The bracket is Barlow Twins' loss as in its official code (``BatchNorm1d(affine=False)``
    standardisation, ``c / batch_size``); the division by ``D`` is kdzoo's choice so the
    value does not grow with the feature dim (``weight=D`` gives the original scale).
    ``lambd=5e-3`` is the paper's value (the official script uses ``0.0051``).
    """
    formula = ('D(s, t) = [sum_i (1 - c_ii)^2 + lambda sum_{i!=j} c_ij^2] / D, '
               'c = Z_s^T Z_t / N, Z = batch-standardised features')
    source = 'Barlow Twins (Zbontar et al., ICML 2021) as a KD loss, divided by D'
    eps = 1e-5

    def __init__(self, lambd: float = 5e-3, eps: Optional[float] = None):
        super().__init__(eps=eps)
        self.lambd = float(lambd)

    def _standardise(self, x):
        x = x.flatten(1)
        x = x - x.mean(dim=0, keepdim=True)
        return x / torch.sqrt(x.pow(2).mean(dim=0, keepdim=True) + self.eps)

    def distance(self, s, t, **context):
        zs = self._standardise(s)
        zt = self._standardise(t)
        n, d = zs.shape
        diag = (zs * zt).sum(dim=0) / n
        total_sq = ((zs @ zs.t()) * (zt @ zt.t())).sum() / n**2
        off_sq = total_sq - diag.pow(2).sum()
        return ((1.0 - diag).pow(2).sum() + self.lambd * off_sq) / d


@DISTANCES.register_module(name='cka')
class CKADistance(Distance):
    """``1 - linear CKA`` between the flattened ``(N, D)`` features (see :func:`linear_cka`)."""
    formula = 'D(s, t) = 1 - <K_s, K_t>_F / (||K_s||_F ||K_t||_F), K = S_c S_c^T (centred S)'
    source = 'CKA (Kornblith et al. 2019); Auto-KD reward'

    def distance(self, s, t, **context):
        return 1.0 - linear_cka(s, t)


@DISTANCES.register_module(name='at')
class AttentionTransferDistance(Distance):
    """AT's loss on feature maps: ``mean((a_s - a_t)^2)`` of their spatial attention maps.

    The ``satt`` transform (``attention``, built with ``p`` and ``eps``) followed by ``l2``:
    the official code's ``(at(x) - at(y)).pow(2).mean()`` with ``at(x) =
    F.normalize(x.pow(2).mean(1).view(N, -1))``, i.e. the mean over ``N*H*W`` of the squared
    difference of the L2-normalised maps (the paper's ``beta/2`` and the sum over layer
    pairs are the term weight and one term per pair).
    """
    ranks = (3, 4)
    formula = 'D(s, t) = mean (a(s) - a(t))^2, a(f) = normalize_2(vec(mean_C |f|^p))'
    source = 'AT (Zagoruyko & Komodakis, ICLR 2017)'

    def __init__(self, p: float = 2.0, eps: Optional[float] = None):
        super().__init__()
        self.attention = SpatialAttention(p=p, eps=eps)

    def distance(self, s, t, **context):
        a_s, a_t = self.attention.pair(s, t)
        return (a_s - a_t).pow(2).mean()
