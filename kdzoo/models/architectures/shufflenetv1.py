"""CIFAR ShuffleNetV1 of the knowledge-distillation zoo (CRD's ``ShuffleV1``).

Grouped 1x1 convolutions (3 groups) with channel shuffles; stages of 4/8/4 bottlenecks with
240/480/960 channels after a 1x1 stem of 24 channels. The first block of each stage has
stride 2 and concatenates an average-pooled shortcut.

Module names (hook points):

- ``conv1`` / ``bn1`` / ``act1``: the stem;
- ``layer1``, ``layer2``, ``layer3``: the stages; ``layer{i}.{j}.preact`` outputs a block's
  result before its final ReLU;
- ``pool``: global average pooling, outputs the ``(N, num_features)`` penultimate feature;
- ``fc``: the classifier.
"""
from typing import Sequence

import torch
from torch import nn

from kdzoo.registry import ARCHITECTURES

__all__ = ['ChannelShuffle', 'ShuffleV1Block', 'CifarShuffleNetV1', 'shufflenetv1']


class ChannelShuffle(nn.Module):
    """Interleave the channels of ``groups`` groups: ``(g, C/g)`` -> ``(C/g, g)``."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1:
            return x
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f'groups={self.groups}'


class ShuffleV1Block(nn.Module):
    """Grouped 1x1 - shuffle - depthwise 3x3 - grouped 1x1 bottleneck.

    Stride 2: the shortcut is a 3x3 average pool whose output is concatenated (so the block
    produces ``out_channels + in_channels`` channels); stride 1: a residual sum.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int,
                 group_first_conv: bool = True):
        super().__init__()
        self.stride = stride
        mid = out_channels // 4
        first_groups = groups if group_first_conv else 1
        self.conv1 = nn.Conv2d(in_channels, mid, 1, groups=first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act1 = nn.ReLU()
        self.shuffle = ChannelShuffle(first_groups)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.act2 = nn.ReLU()
        self.conv3 = nn.Conv2d(mid, out_channels, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()
        # Hook point: the block's result before its final ReLU.
        self.preact = nn.Identity()
        self.act3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shuffle(self.act1(self.bn1(self.conv1(x))))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = self.shortcut(x)
        out = torch.cat([out, shortcut], 1) if self.stride == 2 else out + shortcut
        return self.act3(self.preact(out))


class CifarShuffleNetV1(nn.Module):
    """ShuffleNetV1 for small images.

    Args:
        num_classes: number of logits.
        in_channels: image channels.
        out_channels: stage widths.
        num_blocks: blocks per stage.
        groups: groups of the 1x1 convolutions (the widths must be divisible by 4 * groups).
        stem_channels: width of the 1x1 stem.
    """

    def __init__(self,
                 num_classes: int = 100,
                 in_channels: int = 3,
                 out_channels: Sequence[int] = (240, 480, 960),
                 num_blocks: Sequence[int] = (4, 8, 4),
                 groups: int = 3,
                 stem_channels: int = 24):
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_channels, stem_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.act1 = nn.ReLU()
        channels = stem_channels
        stages = []
        for i, (width, blocks) in enumerate(zip(out_channels, num_blocks)):
            layer = []
            for j in range(blocks):
                # The stride-2 block concatenates its input: it computes the difference.
                block_out = width - channels if j == 0 else width
                layer.append(ShuffleV1Block(channels, block_out, 2 if j == 0 else 1, groups,
                                            group_first_conv=not (i == 0 and j == 0)))
                channels = width
            stages.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3 = stages
        self.num_features = channels
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the last feature map, ``(N, num_features, H/8, W/8)``."""
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


@ARCHITECTURES.register_module(name='shufflenetv1')
def shufflenetv1(num_classes: int = 100, in_channels: int = 3,
                 **kwargs) -> CifarShuffleNetV1:
    """CRD's ShuffleV1: widths 240/480/960, 4/8/4 blocks, 3 groups."""
    return CifarShuffleNetV1(num_classes, in_channels, **kwargs)
