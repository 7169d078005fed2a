"""CIFAR ShuffleNetV2 of the knowledge-distillation zoo (CRD's ``ShuffleV2``, net size 1).

Each stage is a stride-2 down block (two branches, concatenated and shuffled) followed by
channel-split blocks; a 1x1 stem of 24 channels (CRD's released code: its 3x3 stem is
commented out, and the 1.36M parameters of its table count the 1x1 one), a 1x1 head
convolution, global pooling and a linear classifier.

Module names (hook points):

- ``conv1`` / ``bn1`` / ``act1``: the stem;
- ``layer1``, ``layer2``, ``layer3``: the stages (``layer{i}.0`` is the down block);
- ``conv2`` / ``bn2`` (the last feature map before its ReLU) / ``act2``: the head conv;
- ``pool``: global average pooling, outputs the ``(N, num_features)`` penultimate feature;
- ``fc``: the classifier.
"""
from typing import Dict, Tuple

import torch
from torch import nn

from kdzoo.registry import ARCHITECTURES
from .shufflenetv1 import ChannelShuffle

__all__ = ['NET_SIZES', 'ShuffleV2Block', 'ShuffleV2DownBlock', 'CifarShuffleNetV2',
           'shufflenetv2']

#: net size -> (stage widths + head width, blocks per stage after the down block).
NET_SIZES: Dict[float, Tuple[Tuple[int, int, int, int], Tuple[int, int, int]]] = {
    0.2: ((40, 80, 160, 512), (3, 3, 3)),
    0.3: ((40, 80, 160, 512), (3, 7, 3)),
    0.5: ((48, 96, 192, 1024), (3, 7, 3)),
    1: ((116, 232, 464, 1024), (3, 7, 3)),
    1.5: ((176, 352, 704, 1024), (3, 7, 3)),
    2: ((224, 488, 976, 2048), (3, 7, 3)),
}


class ShuffleV2Block(nn.Module):
    """Split the channels in two; one half goes through 1x1 - depthwise 3x3 - 1x1, the other
    passes through; concatenate and shuffle."""

    def __init__(self, channels: int, split_ratio: float = 0.5):
        super().__init__()
        self.split = int(channels * split_ratio)
        branch = channels - self.split
        self.conv1 = nn.Conv2d(branch, branch, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(branch)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(branch, branch, 3, 1, 1, groups=branch, bias=False)
        self.bn2 = nn.BatchNorm2d(branch)
        self.conv3 = nn.Conv2d(branch, branch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(branch)
        self.act3 = nn.ReLU()
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x[:, :self.split], x[:, self.split:]
        out = self.act1(self.bn1(self.conv1(x2)))
        out = self.bn2(self.conv2(out))
        out = self.act3(self.bn3(self.conv3(out)))
        return self.shuffle(torch.cat([x1, out], 1))


class ShuffleV2DownBlock(nn.Module):
    """Stride-2 block: two branches of ``out_channels / 2`` channels, concatenated, shuffled."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        # left branch: depthwise 3x3 (stride 2) - 1x1
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 2, 1, groups=in_channels,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.act2 = nn.ReLU()
        # right branch: 1x1 - depthwise 3x3 (stride 2) - 1x1
        self.conv3 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.act3 = nn.ReLU()
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)
        self.act5 = nn.ReLU()
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = self.act2(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.act3(self.bn3(self.conv3(x)))
        right = self.act5(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return self.shuffle(torch.cat([left, right], 1))


class CifarShuffleNetV2(nn.Module):
    """ShuffleNetV2 for small images.

    Args:
        num_classes: number of logits.
        in_channels: image channels.
        net_size: a key of :data:`NET_SIZES` (CRD's ShuffleV2 is 1).
        stem_channels: width of the stem.
        stem_kernel_size: 1 (CRD's) or 3.
    """

    def __init__(self, num_classes: int = 100, in_channels: int = 3, net_size: float = 1,
                 stem_channels: int = 24, stem_kernel_size: int = 1):
        super().__init__()
        if net_size not in NET_SIZES:
            raise ValueError(f'net_size must be one of {sorted(NET_SIZES)}, got {net_size}')
        widths, num_blocks = NET_SIZES[net_size]
        self.num_classes = num_classes
        if stem_kernel_size not in (1, 3):
            raise ValueError(f'stem_kernel_size must be 1 or 3, got {stem_kernel_size}')
        self.conv1 = nn.Conv2d(in_channels, stem_channels, stem_kernel_size, 1,
                               stem_kernel_size // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.act1 = nn.ReLU()
        channels = stem_channels
        stages = []
        for width, blocks in zip(widths[:3], num_blocks):
            layer = [ShuffleV2DownBlock(channels, width)]
            layer += [ShuffleV2Block(width) for _ in range(blocks)]
            stages.append(nn.Sequential(*layer))
            channels = width
        self.layer1, self.layer2, self.layer3 = stages
        self.num_features = widths[3]
        self.conv2 = nn.Conv2d(channels, self.num_features, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(self.num_features)
        self.act2 = nn.ReLU()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the last feature map (after the 1x1 head conv's BN-ReLU)."""
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.act2(self.bn2(self.conv2(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> logits (or the pooled feature when ``pre_logits``)."""
        x = self.pool(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@ARCHITECTURES.register_module(name='shufflenetv2')
def shufflenetv2(num_classes: int = 100, in_channels: int = 3, net_size: float = 1,
                 **kwargs) -> CifarShuffleNetV2:
    """CRD's ShuffleV2 (net size 1: widths 116/232/464, head 1024)."""
    return CifarShuffleNetV2(num_classes, in_channels, net_size, **kwargs)
