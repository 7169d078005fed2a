"""CIFAR MobileNetV2 of the knowledge-distillation zoo (CRD, mdistiller).

Inverted residual blocks (expansion ``t = 6``, ReLU activations, linear bottlenecks) after a
stride-2 3x3 stem; a 1x1 convolution to 1280 channels (scaled only when ``width > 1``), global
pooling and a linear head. ``mobilenetv2_half`` is CRD's ``mobile_half`` (width 0.5).

Module names (hook points):

- ``conv1`` / ``bn1`` / ``act1``: the stem;
- ``layer1`` ... ``layer4``: the blocks grouped at CRD's feature taps (layer1: 16 and 24
  channels, layer2: 32, layer3: 64 and 96, layer4: 160 and 320; times the width);
  block outputs are linear (no ReLU);
- ``conv2`` / ``bn2`` (the last feature map before its ReLU) / ``act2``: the 1x1 head conv;
- ``pool``: global average pooling, outputs the ``(N, num_features)`` penultimate feature;
- ``fc``: the classifier.
"""
from typing import List

import torch
from torch import nn

from kdzoo.registry import ARCHITECTURES

__all__ = ['InvertedResidual', 'CifarMobileNetV2', 'mobilenetv2', 'mobilenetv2_half']

# (expansion t, channels c, blocks n, stride s) of each block group; groups -> layer index.
_SETTING = [
    (1, 16, 1, 1),
    (None, 24, 2, 1),
    (None, 32, 3, 2),
    (None, 64, 4, 2),
    (None, 96, 3, 1),
    (None, 160, 3, 2),
    (None, 320, 1, 1),
]
_GROUP_TO_LAYER = (1, 1, 2, 3, 3, 4, 4)


def _width(channels: int, mult: float) -> int:
    return max(1, int(channels * mult))


class InvertedResidual(nn.Module):
    """1x1 expansion - 3x3 depthwise - 1x1 linear projection, residual when shapes match."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = in_channels * expand_ratio
        self.use_residual = stride == 1 and in_channels == out_channels
        self.conv_pw = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act1 = nn.ReLU()
        self.conv_dw = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.act2 = nn.ReLU()
        self.conv_pwl = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv_pw(x)))
        out = self.act2(self.bn2(self.conv_dw(out)))
        out = self.bn3(self.conv_pwl(out))
        return x + out if self.use_residual else out


class CifarMobileNetV2(nn.Module):
    """MobileNetV2 for small images (CRD's variant).

    Args:
        num_classes: number of logits.
        in_channels: image channels.
        width_mult: multiplies the block widths (truncated, >= 1); the 1280-channel head
            conv is only scaled for ``width_mult > 1``.
        expand_ratio: expansion ``t`` of the blocks after the first group.
    """

    def __init__(self, num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
                 expand_ratio: int = 6):
        super().__init__()
        self.num_classes = num_classes
        self.width_mult = width_mult
        channels = _width(32, width_mult)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = nn.ReLU()
        layers: List[List[nn.Module]] = [[], [], [], []]
        for (t, c, n, s), layer in zip(_SETTING, _GROUP_TO_LAYER):
            t = expand_ratio if t is None else t
            out_channels = _width(c, width_mult)
            for i in range(n):
                layers[layer - 1].append(
                    InvertedResidual(channels, out_channels, s if i == 0 else 1, t))
                channels = out_channels
        self.layer1 = nn.Sequential(*layers[0])
        self.layer2 = nn.Sequential(*layers[1])
        self.layer3 = nn.Sequential(*layers[2])
        self.layer4 = nn.Sequential(*layers[3])
        self.num_features = _width(1280, width_mult) if width_mult > 1.0 else 1280
        self.conv2 = nn.Conv2d(channels, self.num_features, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(self.num_features)
        self.act2 = nn.ReLU()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the last feature map (after the 1x1 head conv's BN-ReLU)."""
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return self.act2(self.bn2(self.conv2(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> logits (or the pooled feature when ``pre_logits``)."""
        x = self.pool(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@ARCHITECTURES.register_module(name='mobilenetv2')
def mobilenetv2(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
                **kwargs) -> CifarMobileNetV2:
    """CIFAR MobileNetV2, width 1.0."""
    return CifarMobileNetV2(num_classes, in_channels, width_mult, **kwargs)


@ARCHITECTURES.register_module(name='mobilenetv2_half')
def mobilenetv2_half(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
                     **kwargs) -> CifarMobileNetV2:
    """CIFAR MobileNetV2 at width 0.5 (CRD's ``mobile_half``); ``width_mult`` is relative."""
    return CifarMobileNetV2(num_classes, in_channels, 0.5 * width_mult, **kwargs)
