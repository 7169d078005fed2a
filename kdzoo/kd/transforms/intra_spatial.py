"""Intra-spatial transforms: act inside one location or region (Auto-KD's *intra* family)."""
import torch
import torch.nn.functional as F

from kdzoo.registry import KD_TRANSFORMS
from ..base import KnowledgeTransform


def _patch_formula(k: int) -> str:
    return (f'split H, W into a {k}x{k} grid of patches P; '
            f'T(x)[n,c,P] = softmax(x[n,c,P]) over the positions of P')


class _LocalPatches(KnowledgeTransform):
    """Split the map into a ``k x k`` grid of non-overlapping patches; softmax in each patch.

    For every sample and channel, the values inside one patch (``H/k x W/k`` positions) are
    turned into a distribution with a softmax, so the output keeps the input's shape
    ``(N, C, H, W)`` and each patch of each channel sums to 1 (``patch1`` = softmax over
    all of H*W). When H or W is not a multiple of ``k`` the rows / columns are split into
    ``k`` nearly equal parts (``torch.tensor_split``); a map smaller than ``k`` leaves
    single-position patches (value 1).
    """
    family = 'intra'
    ranks = (4, )
    grid: int = 1
    source = 'Auto-KD (local patches)'

    def transform(self, x):
        n, c, h, w = x.shape
        k = self.grid
        if h % k == 0 and w % k == 0:
            patches = x.reshape(n, c, k, h // k, k, w // k).permute(0, 1, 2, 4, 3, 5)
            patches = patches.reshape(n, c, k, k, (h // k) * (w // k))
            out = F.softmax(patches, dim=-1).reshape(n, c, k, k, h // k, w // k)
            return out.permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)
        rows = []
        for band in torch.tensor_split(x, k, dim=2):
            cols = []
            for patch in torch.tensor_split(band, k, dim=3):
                if patch.numel() == 0:
                    cols.append(patch)
                    continue
                cols.append(F.softmax(patch.flatten(2), dim=-1).view_as(patch))
            rows.append(torch.cat(cols, dim=3))
        return torch.cat(rows, dim=2)


@KD_TRANSFORMS.register_module(name='patch1')
class LocalPatch1(_LocalPatches):
    grid = 1
    formula = _patch_formula(1)


@KD_TRANSFORMS.register_module(name='patch2')
class LocalPatch2(_LocalPatches):
    grid = 2
    formula = _patch_formula(2)


@KD_TRANSFORMS.register_module(name='patch4')
class LocalPatch4(_LocalPatches):
    grid = 4
    formula = _patch_formula(4)


@KD_TRANSFORMS.register_module(name='channel_dist')
class ChannelDistribution(KnowledgeTransform):
    """Channel-wise distribution of CWD (Shu et al., ICCV 2021).

    Reshapes ``(N, C, H, W)`` into ``N*C`` rows of ``H*W`` logits. A following ``kl``
    distance applies the softmax over the last dim and averages over the ``N*C`` rows,
    which is CWD's ``tau^2 / (N*C) * sum KL`` exactly.
    """
    family = 'intra'
    ranks = (3, 4)
    formula = 'T(x) = reshape(x, (N*C, H*W)) (per-channel spatial logits)'
    shapes = '(N,C,H,W) -> (N*C,H*W)'
    source = 'CWD (Shu et al., ICCV 2021)'

    def output_rank(self, input_rank):
        return 2

    def transform(self, x):
        return x.reshape(x.shape[0] * x.shape[1], -1)
