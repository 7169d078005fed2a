"""Connectors map a student feature to the teacher's shape (learnable or not).

A connector with ``in_channels`` states the channels (dim 1) of the student feature it takes;
the :class:`~kdzoo.models.Distiller` checks it and names the term, the connector and both
feature shapes when it does not match.
"""
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
