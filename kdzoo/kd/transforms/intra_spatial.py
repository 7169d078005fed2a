"""Intra-spatial transforms: act inside one location or region (Auto-KD's *intra* family)."""
import torch
import torch.nn.functional as F

from kdzoo.registry import KD_TRANSFORMS
from ..base import KnowledgeTransform, register_variants


class LocalPatch(KnowledgeTransform):
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


LocalPatch1, LocalPatch2, LocalPatch4 = register_variants(KD_TRANSFORMS, LocalPatch, {
    f'patch{k}': dict(cls_name=f'LocalPatch{k}', grid=k,
                      formula=(f'split H, W into a {k}x{k} grid of patches P; '
                               'T(x)[n,c,P] = softmax(x[n,c,P]) over the positions of P'))
    for k in (1, 2, 4)
})


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
