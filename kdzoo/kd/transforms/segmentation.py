"""Dense-prediction transforms: per-pixel class logits and pixel-pair similarity.

``pixel_logits`` turns a logit map into one row of class logits per pixel, so a logit
distance (``kl``, ``dist``) compares the class distributions pixel by pixel (DIST applied
to segmentation, or pixel-wise KD). ``pixel_sim`` is the pair-wise term of structured KD
for segmentation (SKD, Liu et al., CVPR 2019): cosine similarities between all pairs of
spatial positions, after max pooling into patches; followed by ``mse`` it is SKD's
pair-wise loss exactly. Both compare maps of different widths (C may differ).
"""
import torch
import torch.nn.functional as F

from kdzoo.registry import KD_TRANSFORMS
from ..base import KnowledgeTransform


@KD_TRANSFORMS.register_module(name='pixel_logits')
class PixelLogits(KnowledgeTransform):
    """``(N, C, H, W)`` -> ``(N*H*W, C)``: the class logits of every pixel as a row."""
    family = 'intra'
    ranks = (4, )
    formula = 'T(x) = reshape(permute(x, (N, H, W, C)), (N*H*W, C)) (per-pixel logits)'
    shapes = '(N,C,H,W) -> (N*H*W,C)'
    source = 'pixel-wise KD / DIST on segmentation logits'

    def output_rank(self, input_rank):
        return 2

    def transform(self, x):
        return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


@KD_TRANSFORMS.register_module(name='pixel_sim')
class PixelSimilarity(KnowledgeTransform):
    """SKD's pair-wise similarity map.

    The map is max-pooled into patches of ``int(scale * H) x int(scale * W)`` pixels, as
    the official code does (``MaxPool2d(kernel=stride=patch, ceil_mode=True)``); then
    each position's feature vector is divided by its L2 norm (detached from the graph with
    ``detach_norm=True``, as in the official ``similarity``), and ``a_ij = f_i . f_j`` for every pair of
    positions. ``mse`` then averages ``(a_s - a_t)^2`` over the N (HW)^2 pairs, which is
    the official ``sum / (HW)^2 / N``.

    Args:
        scale: patch side as a fraction of the map side; ``None`` or 0 keeps every pixel.
        detach_norm: divide by a detached norm, as the official code does (its gradient
            is not the derivative of the value, so the default is the plain cosine
            similarity with gradients through the norm; the SKD configs set ``True``).
    """
    family = 'inter'
    ranks = (4, )
    formula = ('T(f)_nij = <f_ni, f_nj> / (|f_ni| |f_nj|) over positions i, j of '
               'maxpool(f, patch = int(scale * size))')
    shapes = '(N,C,H,W) -> (N,H\'W\',H\'W\')'
    source = 'SKD pair-wise distillation (Liu et al., CVPR 2019)'
    eps = 1e-8

    def __init__(self, scale: float = 0.0, detach_norm: bool = False):
        super().__init__()
        if scale is not None and not 0 <= scale <= 1:
            raise ValueError(f'pixel_sim scale must be in [0, 1], got {scale}')
        self.scale = float(scale or 0.0)
        self.detach_norm = bool(detach_norm)

    def output_rank(self, input_rank):
        return 3

    def transform(self, x):
        if self.scale > 0:
            kernel = (max(1, int(x.shape[2] * self.scale)), max(1, int(x.shape[3] * self.scale)))
            x = F.max_pool2d(x, kernel_size=kernel, stride=kernel, ceil_mode=True)
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        if self.detach_norm:
            norm = norm.detach()
        f = (x / norm).flatten(2)
        return torch.einsum('bcm,bcn->bmn', f, f)


__all__ = ['PixelLogits', 'PixelSimilarity']
