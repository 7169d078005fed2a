"""Connectors map a student feature to the teacher's shape (learnable or not).

A connector with ``in_channels`` states the channels (dim 1) of the student feature it takes;
the :class:`~kdzoo.models.Distiller` checks it and names the term, the connector and both
feature shapes when it does not match.
"""
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.registry import CONNECTORS


@CONNECTORS.register_module()
class ConvConnector(nn.Module):
    """Learnable 1x1 conv (+BN) on ``(N, C_s, H, W)``, resized to the teacher's H, W."""

    def __init__(self, in_channels: int, out_channels: int, norm: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=not norm)
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()

    def forward(self, x: torch.Tensor, target_shape=None) -> torch.Tensor:
        x = self.bn(self.conv(x))
        if target_shape is not None and tuple(x.shape[-2:]) != tuple(target_shape[-2:]):
            x = F.interpolate(x, size=tuple(target_shape[-2:]), mode='bilinear',
                              align_corners=False)
        return x


@CONNECTORS.register_module()
class LinearConnector(nn.Module):
    """Learnable linear map on ``(N, C_s)`` vectors / logits."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.fc = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor, target_shape=None) -> torch.Tensor:
        return self.fc(x)


@CONNECTORS.register_module()
class ResizeConnector(nn.Module):
    """Parameter-free: bilinear resize of the student map to the teacher's H, W."""

    def forward(self, x: torch.Tensor, target_shape=None) -> torch.Tensor:
        return F.interpolate(x, size=tuple(target_shape[-2:]), mode='bilinear',
                             align_corners=False)


@CONNECTORS.register_module()
class VIDRegressor(nn.Module):
    """VID's mean predictor: 1x1 conv, ReLU, 1x1 conv, ReLU, 1x1 conv (no biases), as the
    official ``VIDLoss.regressor`` (``mid_channels`` defaults to ``out_channels``, the
    teacher's, as in its training script). A student map larger than the teacher's is
    average-pooled to the teacher's size first, as VID does; a smaller one is resized
    (bilinear) after the regressor (VID pools the teacher instead, which a connector cannot).
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int = None):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        mid = self.out_channels if mid_channels is None else int(mid_channels)
        self.regressor = nn.Sequential(
            nn.Conv2d(self.in_channels, mid, 1, bias=False), nn.ReLU(),
            nn.Conv2d(mid, mid, 1, bias=False), nn.ReLU(),
            nn.Conv2d(mid, self.out_channels, 1, bias=False))

    def forward(self, x: torch.Tensor, target_shape=None) -> torch.Tensor:
        size = tuple(target_shape[-2:]) if target_shape is not None else tuple(x.shape[-2:])
        if x.shape[-2] > size[0] or x.shape[-1] > size[1]:
            x = F.adaptive_avg_pool2d(x, size)
        x = self.regressor(x)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
        return x


@CONNECTORS.register_module()
class ABFConnector(nn.Module):
    """ReviewKD's attention-based fusion (ABF) of one level (Chen et al., CVPR 2021).

    ReviewKD feeds the student's features from the deepest (the pooled vector, level 0) to
    the shallowest through a chain of ABF modules: level ``k`` maps its feature to
    ``mid_channels`` (1x1 conv + BN), fuses it with the residual of level ``k - 1`` (resized
    by nearest neighbour) through two attention maps from a 1x1 conv + sigmoid on both,
    resizes the fused map to the teacher's size (nearest), keeps it as the residual of the
    next level, and outputs a 3x3 conv + BN of it with the teacher's channels; mdistiller's
    ``ABF``. An ``(N, C)`` input is a 1x1 map; the output has the teacher feature's rank.

    One distill term per level, listed from level 0 in order, each with an ``ABFConnector``
    of the same ``chain`` name and ``level`` 0, 1, 2, ...: a level links to the level before
    it of its chain, built just before it (the terms of one distiller are built in order),
    and reads the residual that level produced in the same step.
    """
    _last_built = {}  # chain name -> the connector built last, to link the next level

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int,
                 level: int, chain: str = 'review'):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.mid_channels, self.level, self.chain = int(mid_channels), int(level), str(chain)
        if self.level < 0:
            raise ValueError(f'ABFConnector level must be >= 0, got {level}')
        self.conv1 = nn.Sequential(nn.Conv2d(self.in_channels, self.mid_channels, 1, bias=False),
                                   nn.BatchNorm2d(self.mid_channels))
        self.conv2 = nn.Sequential(
            nn.Conv2d(self.mid_channels, self.out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(self.out_channels))
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)
        self.att_conv = None
        previous = None
        if self.level > 0:
            self.att_conv = nn.Sequential(nn.Conv2d(2 * self.mid_channels, 2, 1), nn.Sigmoid())
            ref = self._last_built.get(self.chain)
            previous = ref() if ref is not None else None
            if previous is None or previous.level != self.level - 1:
                found = 'none' if previous is None else f'level {previous.level}'
                raise ValueError(
                    f"ABFConnector(chain={self.chain!r}, level={self.level}) needs the level "
                    f'{self.level - 1} connector of its chain built just before it (found '
                    f'{found}): list the ReviewKD terms from level 0 in order')
            if previous.mid_channels != self.mid_channels:
                raise ValueError(f'ABFConnector chain {self.chain!r}: level {self.level} has '
                                 f'mid_channels={self.mid_channels}, level {previous.level} '
                                 f'{previous.mid_channels}; give every level the same')
        # Not a submodule: the previous level is its own term's connector.
        object.__setattr__(self, 'previous', previous)
        object.__setattr__(self, 'residual', None)
        type(self)._last_built[self.chain] = weakref.ref(self)

    def __getstate__(self):
        # the residual is one step's activation: never copied or pickled
        state = self.__dict__.copy()
        state['residual'] = None
        return state

    def forward(self, x: torch.Tensor, target_shape=None) -> torch.Tensor:
        if x.dim() == 2:
            x = x[:, :, None, None]
        n, _, h, w = x.shape
        x = self.conv1(x)
        if self.att_conv is not None:
            y = self.previous.residual
            if y is None or y.shape[0] != n:
                raise RuntimeError(
                    f'ABFConnector(chain={self.chain!r}, level={self.level}): level '
                    f'{self.level - 1} has not run on this batch; its term must come before '
                    f'this one')
            y = F.interpolate(y, size=(h, w), mode='nearest')
            att = self.att_conv(torch.cat([x, y], dim=1))
            x = x * att[:, 0:1] + y * att[:, 1:2]
        size = tuple(target_shape[-2:]) if target_shape is not None and \
            len(target_shape) == 4 else (h, w)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode='nearest')
        object.__setattr__(self, 'residual', x)
        out = self.conv2(x)
        return out.flatten(1) if target_shape is not None and len(target_shape) == 2 else out
