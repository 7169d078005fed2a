"""Inter-spatial transforms: relate locations or samples (Auto-KD's *inter* family)."""
from typing import Sequence

import torch
import torch.nn.functional as F

from kdzoo.registry import KD_TRANSFORMS
from ..base import EpsMixin, KnowledgeTransform, register_variants


class Pool(KnowledgeTransform):
    """Adaptive average pooling to ``size x size`` (keeps rank 4)."""
    family = 'inter'
    ranks = (4, )
    size: int = 1
    source = 'Auto-KD (multi-scale pooling)'

    def transform(self, x):
        return F.adaptive_avg_pool2d(x, self.size)


Pool1, Pool2, Pool4 = register_variants(KD_TRANSFORMS, Pool, {
    f'pool{k}': dict(cls_name=f'Pool{k}', size=k,
                     formula=f'T(x) = adaptive_avg_pool(x, {k}x{k})',
                     shapes=f'(N,C,H,W) -> (N,C,{k},{k})')
    for k in (1, 2, 4)
})


@KD_TRANSFORMS.register_module(name='gap')
class GlobalAvgPool(KnowledgeTransform):
    """Global average pooling to a vector (the penultimate feature of a CNN)."""
    family = 'inter'
    ranks = (3, 4)
    formula = 'T(x) = mean_HW(x)'
    shapes = '(N,C,H,W) -> (N,C)'
    source = 'KDEP / feature-vector KD (pooled features)'

    def output_rank(self, input_rank):
        return 2

    def transform(self, x):
        return x.flatten(2).mean(dim=2)


@KD_TRANSFORMS.register_module(name='pyramid')
class PoolingPyramid(KnowledgeTransform):
    """Multi-scale pooling pyramid: average pools at sizes ``levels`` concatenated.

    The default levels (1, 2, 4) give ``C * (1 + 4 + 16) = 21 C`` features per sample.
    SPP's pyramid layout with *average* pooling (SPP itself max-pools).
    """
    family = 'inter'
    ranks = (4, )
    formula = 'T(x) = concat_k vec(adaptive_avg_pool(x, k x k)), k in (1, 2, 4)'
    shapes = '(N,C,H,W) -> (N,21*C)'
    source = 'Auto-KD (multi-scale pooling); SPP layout (He et al. 2014), average-pooled'

    def __init__(self, levels: Sequence[int] = (1, 2, 4)):
        super().__init__()
        self.levels = tuple(int(k) for k in levels)

    def output_rank(self, input_rank):
        return 2

    def transform(self, x):
        return torch.cat([F.adaptive_avg_pool2d(x, k).flatten(1) for k in self.levels], dim=1)


@KD_TRANSFORMS.register_module(name='gram_C')
class ChannelGram(KnowledgeTransform):
    """Channel x channel Gram matrix per sample, normalised by the number of positions.

    The style Gram matrix of Gatys et al.; FSP (Yim et al.) relates the maps of *two*
    layers, ``G_ij = sum_hw F1_i F2_j / (H*W)``, and this is its one-layer case.
    """
    family = 'inter'
    ranks = (3, 4)
    formula = 'T(f)_n = F_n F_n^T / (H*W), F_n = reshape(f_n, (C, H*W))'
    shapes = '(N,C,H,W) -> (N,C,C)'
    source = 'Gram matrices (style, Gatys et al. CVPR 2016; one-layer FSP, Yim et al. CVPR 2017)'

    def output_rank(self, input_rank):
        return 3

    def transform(self, x):
        flat = x.flatten(2)
        return torch.bmm(flat, flat.transpose(1, 2)) / flat.shape[2]


@KD_TRANSFORMS.register_module(name='gram_N')
class SampleGram(KnowledgeTransform):
    """Sample x sample Gram matrix of the flattened features, normalised by their dim."""
    family = 'inter'
    ranks = (2, 3, 4)
    formula = 'T(f) = F F^T / D, F = reshape(f, (N, D))'
    shapes = '(N,...) -> (N,N)'
    source = 'Auto-KD (Gram / similarity matrices)'

    def output_rank(self, input_rank):
        return 2

    def transform(self, x):
        flat = x.flatten(1)
        return flat @ flat.t() / flat.shape[1]


@KD_TRANSFORMS.register_module(name='sample_sim')
class SampleSimilarity(EpsMixin, KnowledgeTransform):
    """Similarity-preserving KD's batch similarity (Tung & Mori, ICCV 2019).

    ``G = F F^T`` with rows L2-normalised; followed by ``l2`` it is SP's loss
    ``||G_s - G_t||_F^2 / N^2``.
    """
    family = 'inter'
    ranks = (2, 3, 4)
    formula = 'T(f) = row_normalize_2(F F^T), F = reshape(f, (N, D))'
    shapes = '(N,...) -> (N,N)'
    source = 'SP (Tung & Mori, ICCV 2019)'
    eps = 1e-12

    def output_rank(self, input_rank):
        return 2

    def transform(self, x):
        flat = x.flatten(1)
        return F.normalize(flat @ flat.t(), p=2.0, dim=1, eps=self.eps)
