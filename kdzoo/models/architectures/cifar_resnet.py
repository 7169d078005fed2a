"""CIFAR ResNets of the knowledge-distillation zoo (CRD, mdistiller).

``resnet{8,14,20,32,44,56,110}`` have three stages of basic blocks with 16/32/64 channels
after a 16-channel stem; ``resnet8x4`` and ``resnet32x4`` are four times wider (a 32-channel
stem, stages of 64/128/256 channels). Depth ``6n + 2`` means ``n`` blocks per stage.

Module names (hook points):

- ``conv1`` / ``bn1`` / ``act1``: the 3x3 stem;
- ``layer1``, ``layer2``, ``layer3``: the stages (``layer{i}.{j}`` is block ``j``);
  ``layer{i}.{j}.preact`` outputs a block's sum before its final ReLU;
- ``pool``: global average pooling, outputs the ``(N, num_features)`` penultimate feature;
- ``fc``: the classifier.

``width_mult`` scales every channel count and ``depth_mult`` the number of blocks per stage
(search knobs); both keep the default architecture at 1.0.
"""
from typing import Optional, Sequence

import torch
from torch import nn

from kdzoo.registry import ARCHITECTURES

__all__ = [
    'BasicBlock', 'CifarResNet', 'resnet8', 'resnet14', 'resnet20', 'resnet32', 'resnet44',
    'resnet56', 'resnet110', 'resnet8x4', 'resnet32x4'
]


def scale_channels(channels: int, mult: float) -> int:
    """``channels * mult`` rounded, at least 1."""
    return max(1, int(round(channels * mult)))


def scale_depth(blocks: int, mult: float) -> int:
    """``blocks * mult`` rounded, at least 1."""
    return max(1, int(round(blocks * mult)))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (1x1 projection when shapes differ)."""
    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: Optional[nn.Module] = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))
        # Hook point: the residual sum before the final ReLU.
        self.preact = nn.Identity()
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(self.preact(out + shortcut))


class CifarResNet(nn.Module):
    """ResNet for small images: a 3x3 stem, three stages, global pooling, a linear head.

    Args:
        depth: ``6n + 2`` (``n`` basic blocks per stage).
        channels: stem and stage widths, e.g. ``(16, 16, 32, 64)``.
        num_classes: number of logits.
        in_channels: image channels.
        width_mult: multiplies every width (rounded, >= 1).
        depth_mult: multiplies ``n`` (rounded, >= 1).
        zero_init_residual: start each block's last BN at zero (identity blocks).
    """

    def __init__(self,
                 depth: int,
                 channels: Sequence[int] = (16, 16, 32, 64),
                 num_classes: int = 100,
                 in_channels: int = 3,
                 width_mult: float = 1.0,
                 depth_mult: float = 1.0,
                 zero_init_residual: bool = False):
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f'CIFAR ResNet depth must be 6n + 2 with n >= 1 (8, 14, 20, ...), '
                             f'got {depth}')
        if len(channels) != 4:
            raise ValueError(f'channels must be (stem, stage1, stage2, stage3), got {channels}')
        self.num_classes = num_classes
        self.blocks_per_stage = scale_depth((depth - 2) // 6, depth_mult)
        self.depth = 6 * self.blocks_per_stage + 2
        widths = [scale_channels(c, width_mult) for c in channels]
        self.widths = tuple(widths)

        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.act1 = nn.ReLU()
        self.layer1 = self._make_stage(widths[0], widths[1], stride=1)
        self.layer2 = self._make_stage(widths[1], widths[2], stride=2)
        self.layer3 = self._make_stage(widths[2], widths[3], stride=2)
        self.num_features = widths[3]
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights(zero_init_residual)

    def _make_stage(self, in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
        blocks = [BasicBlock(in_channels, out_channels, stride)]
        blocks += [BasicBlock(out_channels, out_channels) for _ in
                   range(self.blocks_per_stage - 1)]
        return nn.Sequential(*blocks)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the last feature map, ``(N, num_features, H/4, W/4)``."""
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        return self.layer3(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> logits (or the pooled feature when ``pre_logits``)."""
        x = self.pool(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_NARROW = (16, 16, 32, 64)
_WIDE = (32, 64, 128, 256)


def _resnet(depth: int, channels: Sequence[int], num_classes: int, in_channels: int,
            width_mult: float, depth_mult: float, **kwargs) -> CifarResNet:
    return CifarResNet(depth, channels, num_classes=num_classes, in_channels=in_channels,
                       width_mult=width_mult, depth_mult=depth_mult, **kwargs)


@ARCHITECTURES.register_module(name='resnet8')
def resnet8(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
            depth_mult: float = 1.0, **kwargs) -> CifarResNet:
    """CIFAR ResNet-8 (1 block per stage, 16/32/64 channels)."""
    return _resnet(8, _NARROW, num_classes, in_channels, width_mult, depth_mult, **kwargs)


@ARCHITECTURES.register_module(name='resnet14')
def resnet14(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
             depth_mult: float = 1.0, **kwargs) -> CifarResNet:
    """CIFAR ResNet-14 (2 blocks per stage)."""
    return _resnet(14, _NARROW, num_classes, in_channels, width_mult, depth_mult, **kwargs)


@ARCHITECTURES.register_module(name='resnet20')
def resnet20(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
             depth_mult: float = 1.0, **kwargs) -> CifarResNet:
    """CIFAR ResNet-20 (3 blocks per stage)."""
    return _resnet(20, _NARROW, num_classes, in_channels, width_mult, depth_mult, **kwargs)


@ARCHITECTURES.register_module(name='resnet32')
def resnet32(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
             depth_mult: float = 1.0, **kwargs) -> CifarResNet:
    """CIFAR ResNet-32 (5 blocks per stage)."""
    return _resnet(32, _NARROW, num_classes, in_channels, width_mult, depth_mult, **kwargs)


@ARCHITECTURES.register_module(name='resnet44')
def resnet44(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
             depth_mult: float = 1.0, **kwargs) -> CifarResNet:
    """CIFAR ResNet-44 (7 blocks per stage)."""
    return _resnet(44, _NARROW, num_classes, in_channels, width_mult, depth_mult, **kwargs)


@ARCHITECTURES.register_module(name='resnet56')
def resnet56(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
             depth_mult: float = 1.0, **kwargs) -> CifarResNet:
    """CIFAR ResNet-56 (9 blocks per stage)."""
    return _resnet(56, _NARROW, num_classes, in_channels, width_mult, depth_mult, **kwargs)


@ARCHITECTURES.register_module(name='resnet110')
def resnet110(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
              depth_mult: float = 1.0, **kwargs) -> CifarResNet:
    """CIFAR ResNet-110 (18 blocks per stage)."""
    return _resnet(110, _NARROW, num_classes, in_channels, width_mult, depth_mult, **kwargs)


@ARCHITECTURES.register_module(name='resnet8x4')
def resnet8x4(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
              depth_mult: float = 1.0, **kwargs) -> CifarResNet:
    """CIFAR ResNet-8, 4x wider (32-channel stem, 64/128/256 channels)."""
    return _resnet(8, _WIDE, num_classes, in_channels, width_mult, depth_mult, **kwargs)


@ARCHITECTURES.register_module(name='resnet32x4')
def resnet32x4(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
               depth_mult: float = 1.0, **kwargs) -> CifarResNet:
    """CIFAR ResNet-32, 4x wider (32-channel stem, 64/128/256 channels)."""
    return _resnet(32, _WIDE, num_classes, in_channels, width_mult, depth_mult, **kwargs)
