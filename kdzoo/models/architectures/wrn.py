"""Wide ResNets (WRN-d-k) of the knowledge-distillation zoo (CRD, mdistiller).

Pre-activation basic blocks; depth ``6n + 4`` means ``n`` blocks per stage and stage widths
``16k / 32k / 64k`` after a 16-channel stem (``k`` the widen factor).

Module names (hook points):

- ``conv1``: the 3x3 stem (pre-activation network: no BN in the stem);
- ``layer1``, ``layer2``, ``layer3``: the stages (``layer{i}.{j}`` is block ``j``; block
  outputs are residual sums, i.e. before any ReLU);
- ``bn_final`` (the last feature map before its ReLU) and ``act_final``;
- ``pool``: global average pooling, outputs the ``(N, num_features)`` penultimate feature;
- ``fc``: the classifier.

``width_mult`` scales every channel count and ``depth_mult`` the number of blocks per stage.
"""
from typing import Optional

import torch
from torch import nn

from kdzoo.registry import ARCHITECTURES
from .cifar_resnet import scale_channels, scale_depth

__all__ = ['WideBasicBlock', 'WideResNet', 'wrn_16_1', 'wrn_16_2', 'wrn_40_1', 'wrn_40_2']


class WideBasicBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 plus a shortcut.

    When the shape changes, the shortcut is a 1x1 convolution of the activated input.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.act1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act2 = nn.ReLU()
        self.drop = nn.Dropout(drop_rate)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.shortcut: Optional[nn.Module] = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.act2(self.bn2(self.conv1(out)))
        out = self.conv2(self.drop(out))
        return out + shortcut


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor`` for small images.

    Args:
        depth: ``6n + 4`` (``n`` blocks per stage).
        widen_factor: ``k``; stage widths are ``16k, 32k, 64k``.
        num_classes: number of logits.
        in_channels: image channels.
        width_mult: multiplies every width (rounded, >= 1).
        depth_mult: multiplies ``n`` (rounded, >= 1).
        drop_rate: dropout between the two convolutions of a block (0 in the KD zoo).
    """

    def __init__(self,
                 depth: int,
                 widen_factor: int = 1,
                 num_classes: int = 100,
                 in_channels: int = 3,
                 width_mult: float = 1.0,
                 depth_mult: float = 1.0,
                 drop_rate: float = 0.0):
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f'WideResNet depth must be 6n + 4 with n >= 1 (10, 16, 22, ...), '
                             f'got {depth}')
        self.num_classes = num_classes
        self.blocks_per_stage = scale_depth((depth - 4) // 6, depth_mult)
        self.depth = 6 * self.blocks_per_stage + 4
        self.widen_factor = widen_factor
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        widths = [scale_channels(c, width_mult) for c in widths]
        self.widths = tuple(widths)

        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.layer1 = self._make_stage(widths[0], widths[1], 1, drop_rate)
        self.layer2 = self._make_stage(widths[1], widths[2], 2, drop_rate)
        self.layer3 = self._make_stage(widths[2], widths[3], 2, drop_rate)
        self.bn_final = nn.BatchNorm2d(widths[3])
        self.act_final = nn.ReLU()
        self.num_features = widths[3]
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights()

    def _make_stage(self, in_channels: int, out_channels: int, stride: int,
                    drop_rate: float) -> nn.Sequential:
        blocks = [WideBasicBlock(in_channels, out_channels, stride, drop_rate)]
        blocks += [WideBasicBlock(out_channels, out_channels, 1, drop_rate)
                   for _ in range(self.blocks_per_stage - 1)]
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the last feature map (after the final BN-ReLU)."""
        x = self.conv1(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.act_final(self.bn_final(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> logits (or the pooled feature when ``pre_logits``)."""
        x = self.pool(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _wrn(depth: int, widen_factor: int, num_classes: int, in_channels: int, width_mult: float,
         depth_mult: float, **kwargs) -> WideResNet:
    return WideResNet(depth, widen_factor, num_classes=num_classes, in_channels=in_channels,
                      width_mult=width_mult, depth_mult=depth_mult, **kwargs)


@ARCHITECTURES.register_module(name='wrn_16_1')
def wrn_16_1(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
             depth_mult: float = 1.0, **kwargs) -> WideResNet:
    """WRN-16-1 (2 blocks per stage, widen factor 1)."""
    return _wrn(16, 1, num_classes, in_channels, width_mult, depth_mult, **kwargs)


@ARCHITECTURES.register_module(name='wrn_16_2')
def wrn_16_2(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
             depth_mult: float = 1.0, **kwargs) -> WideResNet:
    """WRN-16-2 (2 blocks per stage, widen factor 2)."""
    return _wrn(16, 2, num_classes, in_channels, width_mult, depth_mult, **kwargs)


@ARCHITECTURES.register_module(name='wrn_40_1')
def wrn_40_1(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
             depth_mult: float = 1.0, **kwargs) -> WideResNet:
    """WRN-40-1 (6 blocks per stage, widen factor 1)."""
    return _wrn(40, 1, num_classes, in_channels, width_mult, depth_mult, **kwargs)


@ARCHITECTURES.register_module(name='wrn_40_2')
def wrn_40_2(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0,
             depth_mult: float = 1.0, **kwargs) -> WideResNet:
    """WRN-40-2 (6 blocks per stage, widen factor 2)."""
    return _wrn(40, 2, num_classes, in_channels, width_mult, depth_mult, **kwargs)
