"""Distances for detectors' FPN features: FGD (focal and global) and PKD (Pearson).

FGD needs the ground-truth boxes of the batch. A :class:`~kdzoo.models.Distiller` whose
student is an mmdet detector passes them to every term as context (``gt_boxes``: one
``(K, 4)`` tensor of ``x1, y1, x2, y2`` in input pixels per image; ``img_shapes``: each
image's ``(h, w)``; ``batch_input_shape``: the padded batch's ``(H, W)``).
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.registry import DISTANCES
from ..base import Distance

#: What FGD's boxes are divided by before they are scaled to the feature map.
BOX_SCALES = ('img_shape', 'batch_input_shape')


def fgd_attention(x: torch.Tensor, temp: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """FGD's spatial and channel attention of an ``(N, C, H, W)`` map.

    ``S = H W softmax_HW(mean_C |x| / temp)`` of shape ``(N, H, W)`` and
    ``A = C softmax_C(mean_HW |x| / temp)`` of shape ``(N, C)`` (each averages to 1).
    """
    n, c, h, w = x.shape
    value = x.abs()
    spatial = (h * w) * F.softmax(value.mean(dim=1).reshape(n, -1) / temp, dim=1)
    channel = c * F.softmax(value.mean(dim=(2, 3)) / temp, dim=1)
    return spatial.reshape(n, h, w), channel


def fgd_masks(gt_boxes: Sequence[torch.Tensor], scales: Sequence[Sequence[float]],
              height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """FGD's foreground and background masks on a ``height x width`` feature map.

    Each image's boxes are scaled to the map (``x / scale_w * W``, ``y / scale_h * H``) and
    cover the cells ``floor(y1) .. ceil(y2)`` and ``floor(x1) .. ceil(x2)``, both ends
    included, as in the official code. A covered cell of the foreground mask holds
    ``1 / (rows * cols)`` of its box (the largest such value where boxes overlap; small
    boxes weigh more per cell). The background mask is 1 where no box is, divided by its
    sum (when it is not empty). Returns two ``(N, H, W)`` tensors.
    """
    fg, bg = [], []
    for boxes, (scale_h, scale_w) in zip(gt_boxes, scales):
        boxes = boxes.detach().float().reshape(-1, 4)
        x1 = torch.floor(boxes[:, 0] / scale_w * width)
        x2 = torch.ceil(boxes[:, 2] / scale_w * width)
        y1 = torch.floor(boxes[:, 1] / scale_h * height)
        y2 = torch.ceil(boxes[:, 3] / scale_h * height)
        area = 1.0 / ((y2 + 1 - y1) * (x2 + 1 - x1))
        rows = torch.arange(height, device=boxes.device, dtype=boxes.dtype).view(1, -1, 1)
        cols = torch.arange(width, device=boxes.device, dtype=boxes.dtype).view(1, 1, -1)
        inside = ((rows >= y1.view(-1, 1, 1)) & (rows <= y2.view(-1, 1, 1)) &
                  (cols >= x1.view(-1, 1, 1)) & (cols <= x2.view(-1, 1, 1)))
        values = torch.where(inside, area.view(-1, 1, 1), torch.zeros_like(area).view(-1, 1, 1))
        mask_fg = values.amax(dim=0) if len(boxes) else \
            torch.zeros(height, width, device=boxes.device)
        mask_bg = (mask_fg <= 0).float()
        total = mask_bg.sum()
        fg.append(mask_fg)
        bg.append(mask_bg / total if total > 0 else mask_bg)
    return torch.stack(fg), torch.stack(bg)


class GlobalContext(nn.Module):
    """FGD's GcBlock-style context: ``x + transform(sum_HW softmax_HW(conv(x)) * x)``.

    The attention pooling is a 1x1 conv to one map (kaiming-normal, fan-in), softmax over
    the locations; the transform is conv 1x1 (C -> C/2), LayerNorm over (C/2, 1, 1), ReLU,
    conv 1x1 (C/2 -> C), whose last conv starts at zero (so the block starts as identity).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv_mask = nn.Conv2d(channels, 1, kernel_size=1)
        self.channel_add = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=1),
            nn.LayerNorm([channels // 2, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // 2, channels, kernel_size=1))
        nn.init.kaiming_normal_(self.conv_mask.weight, mode='fan_in', nonlinearity='relu')
        nn.init.zeros_(self.conv_mask.bias)
        nn.init.zeros_(self.channel_add[-1].weight)
        nn.init.zeros_(self.channel_add[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        weights = F.softmax(self.conv_mask(x).reshape(n, 1, h * w), dim=2)  # (N, 1, HW)
        context = torch.bmm(x.reshape(n, c, h * w), weights.transpose(1, 2))  # (N, C, 1)
        return x + self.channel_add(context.reshape(n, c, 1, 1))


@DISTANCES.register_module(name='fgd')
class FGDDistance(Distance):
    """FGD (Yang et al., CVPR 2022): focal and global distillation of one FPN level.

    As the official ``FeatureLoss`` (yzd-v/FGD; MMRazor's ``FGDLoss``), on ``(N, C, H, W)``
    student (after the term's connector: FGD's ``align`` is ``ConvConnector(norm=False)``)
    and teacher maps, with the teacher's attention ``S_t, A_t`` (:func:`fgd_attention` at
    temperature ``temp``) and the box masks ``M_fg, M_bg`` (:func:`fgd_masks`)::

        fg   = sum M_fg S_t A_t (s - t)^2 / N       bg = the same with M_bg
        att  = sum |A_s - A_t| / N + sum |S_s - S_t| / N
        glob = sum (G_s(s) - G_t(t))^2 / N          (G: :class:`GlobalContext`, learnable)
        D    = alpha fg + beta bg + gamma att + lambd glob

    The student's attention ``S_s, A_s`` only enters ``att``. The two context blocks have
    learnable parameters (trained with the student, saved in the distiller's checkpoints),
    so ``in_channels``, the teacher's channels, is needed when the term is built. The
    defaults are the official RetinaNet settings (``temp=0.5``, alpha 1e-3, beta 5e-4,
    gamma 1e-3, lambda 5e-6); the term's ``tau`` should stay 1 (``temp`` is FGD's).

    Boxes come from the context: ``gt_boxes`` (input pixels) divided by each image's
    ``img_shape`` (the official code; ``box_scale='batch_input_shape'`` divides by the padded
    batch shape instead, which matches the feature map when images are padded).
    """
    ranks = (4, )
    parametric = True
    needs_boxes = True
    formula = ('D(s, t) = alpha sum M_fg S_t A_t (s-t)^2 / N + beta sum M_bg S_t A_t (s-t)^2 / N '
               '+ gamma (sum |A_s - A_t| + sum |S_s - S_t|) / N + lambda sum (G_s(s) - G_t(t))^2'
               ' / N; S = HW softmax_HW(mean_C|x|/T), A = C softmax_C(mean_HW|x|/T), M_fg = '
               '1/area of the gt box, M_bg = 1/#background, G = learned global context')
    source = 'FGD (Yang et al., CVPR 2022)'

    def __init__(self, in_channels: int, temp: float = 0.5, alpha: float = 0.001,
                 beta: float = 0.0005, gamma: float = 0.001, lambd: float = 0.000005,
                 box_scale: str = 'img_shape'):
        super().__init__()
        if int(in_channels) < 2:
            raise ValueError(f'fgd in_channels must be >= 2 (the teacher\'s channels), got '
                             f'{in_channels}')
        if temp <= 0:
            raise ValueError(f'fgd temp must be > 0, got {temp}')
        if box_scale not in BOX_SCALES:
            raise ValueError(f'fgd box_scale={box_scale!r}; valid: {", ".join(BOX_SCALES)}')
        self.in_channels = int(in_channels)
        self.temp = float(temp)
        self.alpha, self.beta = float(alpha), float(beta)
        self.gamma, self.lambd = float(gamma), float(lambd)
        self.box_scale = box_scale
        self.context_s = GlobalContext(self.in_channels)
        self.context_t = GlobalContext(self.in_channels)

    @classmethod
    def metadata(cls) -> dict:
        return dict(super().metadata(), needs_boxes=cls.needs_boxes)

    def _scales(self, context: dict, n: int) -> List[Tuple[float, float]]:
        boxes = context.get('gt_boxes')
        if boxes is None:
            raise ValueError(
                "distance 'fgd' needs the ground-truth boxes of the batch (context key "
                "gt_boxes: one (K, 4) tensor per image, with img_shapes); train it in a "
                "Distiller whose batches are mmdet DetDataSamples with gt_instances.bboxes")
        if len(boxes) != n:
            raise ValueError(f'fgd: {len(boxes)} box tensors in gt_boxes for a batch of {n}')
        if self.box_scale == 'img_shape':
            shapes = context.get('img_shapes')
            if shapes is None or len(shapes) != n:
                raise ValueError(
                    f"distance 'fgd' (box_scale='img_shape') needs img_shapes, each image's "
                    f"(h, w) in the context, one per image; got {shapes!r}")
            return [(float(s[0]), float(s[1])) for s in shapes]
        shape = context.get('batch_input_shape')
        if shape is None:
            raise ValueError("distance 'fgd' (box_scale='batch_input_shape') needs the "
                             "context key batch_input_shape, the padded batch's (H, W)")
        return [(float(shape[0]), float(shape[1]))] * n

    def focal_masks(self, t: torch.Tensor, **context) -> Tuple[torch.Tensor, torch.Tensor]:
        """``M_fg, M_bg`` of shape ``(N, H, W)`` for the boxes of the context."""
        n, _, h, w = t.shape
        scales = self._scales(context, n)
        boxes = [torch.as_tensor(getattr(b, 'tensor', b), device=t.device)
                 for b in context['gt_boxes']]
        fg, bg = fgd_masks(boxes, scales, h, w)
        return fg.to(t.dtype), bg.to(t.dtype)

    def components(self, s: torch.Tensor, t: torch.Tensor, **context) -> dict:
        """The four unweighted losses: ``fg``, ``bg``, ``att``, ``glob``."""
        self.check_inputs(s, t)
        if s.shape[1] != self.in_channels:
            raise ValueError(f'fgd has in_channels={self.in_channels} but the features have '
                             f'{s.shape[1]} channels (shape {tuple(s.shape)}); set in_channels='
                             f'{s.shape[1]}')
        n = s.shape[0]
        mask_fg, mask_bg = self.focal_masks(t, **context)
        spatial_t, channel_t = fgd_attention(t, self.temp)
        spatial_s, channel_s = fgd_attention(s, self.temp)
        weight = spatial_t.unsqueeze(1) * channel_t[:, :, None, None]  # (N, C, H, W)
        sq = (s - t).pow(2) * weight
        fg = (sq * mask_fg.unsqueeze(1)).sum() / n
        bg = (sq * mask_bg.unsqueeze(1)).sum() / n
        att = ((channel_s - channel_t).abs().sum() + (spatial_s - spatial_t).abs().sum()) / n
        glob = (self.context_s(s) - self.context_t(t)).pow(2).sum() / n
        return dict(fg=fg, bg=bg, att=att, glob=glob)

    def distance(self, s, t, **context):
        parts = self.components(s, t, **context)
        return (self.alpha * parts['fg'] + self.beta * parts['bg'] +
                self.gamma * parts['att'] + self.lambd * parts['glob'])


@DISTANCES.register_module(name='pkd')
class PKDDistance(Distance):
    """PKD (Cao et al., NeurIPS 2022): MSE of per-channel standardised maps, halved.

    As MMRazor's ``PKDLoss`` (the paper's code): each channel of an ``(N, C, H, W)`` map is
    standardised over the batch and the locations, ``(x - mean_{N,H,W}) / (std_{N,H,W} +
    1e-6)`` with the unbiased std, and ``D = mse(s', t') / 2``; that is ``1 - r`` up to the
    ``n / (n - 1)`` of the unbiased std, with ``r`` the Pearson correlation of each channel's
    ``N*H*W`` values, averaged over channels. It is not ``standardize`` + ``mse`` (kdzoo's
    ``standardize`` works per sample). The maps must have the same shape: where
    ``PKDLoss(resize_stu=True)`` resizes the student map, give the term a
    ``ResizeConnector`` (or a ``ConvConnector`` for other channels).
    """
    ranks = (4, )
    formula = ('D(s, t) = mean (Z(s) - Z(t))^2 / 2, Z(x) = (x - mean_{N,H,W}) / (std_{N,H,W} + '
               '1e-6) per channel, unbiased std')
    source = 'PKD (Cao et al., NeurIPS 2022)'
    #: added to the std, as MMRazor's ``PKDLoss.norm`` (a constant there too)
    std_eps = 1e-6

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        flat = x.transpose(0, 1).reshape(c, -1)
        flat = (flat - flat.mean(dim=1, keepdim=True)) / (
            flat.std(dim=1, keepdim=True) + self.std_eps)
        return flat.reshape(c, n, h, w).transpose(0, 1)

    def distance(self, s, t, **context):
        return F.mse_loss(self.standardize(s), self.standardize(t)) / 2
