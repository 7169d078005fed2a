"""CIFAR VGGs with batch norm of the knowledge-distillation zoo (CRD, mdistiller).

Five stages of 3x3 conv-BN(-ReLU) layers; a 2x2 max pool precedes stages 1-3 (and stage 4
too for inputs of 64 pixels or more, as in CRD for Tiny-ImageNet); global average pooling
and a single linear layer replace VGG's fully connected head.

Module names (hook points):

- ``layer0`` ... ``layer4``: the stages; ``layer{i}.convs`` outputs the stage's feature map
  before its final ReLU, ``layer{i}`` after it;
- ``pool``: global average pooling, outputs the ``(N, num_features)`` penultimate feature;
- ``fc``: the classifier.
"""
from typing import Dict, List, Sequence

import torch
from torch import nn

from kdzoo.registry import ARCHITECTURES
from .cifar_resnet import scale_channels

__all__ = ['VGG_CFGS', 'VGGStage', 'CifarVGG', 'vgg8', 'vgg11', 'vgg13', 'vgg16', 'vgg19']

#: Conv widths of each of the five stages.
VGG_CFGS: Dict[str, List[List[int]]] = {
    'vgg8': [[64], [128], [256], [512], [512]],
    'vgg11': [[64], [128], [256, 256], [512, 512], [512, 512]],
    'vgg13': [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    'vgg16': [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    'vgg19': [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512],
              [512, 512, 512, 512]],
}


class VGGStage(nn.Module):
    """Optional 2x2 max pool, then 3x3 conv-BN layers with ReLUs; ``act`` is the last ReLU."""

    def __init__(self, in_channels: int, widths: Sequence[int], downsample: bool):
        super().__init__()
        self.downsample = nn.MaxPool2d(2, 2) if downsample else nn.Identity()
        layers: List[nn.Module] = []
        for i, width in enumerate(widths):
            if i > 0:
                layers.append(nn.ReLU())
            layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width)]
            in_channels = width
        self.convs = nn.Sequential(*layers)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convs(self.downsample(x)))


class CifarVGG(nn.Module):
    """VGG-BN for small images.

    Args:
        cfg: conv widths per stage (five lists), or a key of :data:`VGG_CFGS`.
        num_classes: number of logits.
        in_channels: image channels.
        width_mult: multiplies every width (rounded, >= 1).
    """

    def __init__(self, cfg, num_classes: int = 100, in_channels: int = 3,
                 width_mult: float = 1.0):
        super().__init__()
        if isinstance(cfg, str):
            cfg = VGG_CFGS[cfg]
        if len(cfg) != 5:
            raise ValueError(f'a VGG config has 5 stages, got {len(cfg)}')
        cfg = [[scale_channels(w, width_mult) for w in stage] for stage in cfg]
        self.num_classes = num_classes
        self.layer0 = VGGStage(in_channels, cfg[0], downsample=False)
        self.layer1 = VGGStage(cfg[0][-1], cfg[1], downsample=True)
        self.layer2 = VGGStage(cfg[1][-1], cfg[2], downsample=True)
        self.layer3 = VGGStage(cfg[2][-1], cfg[3], downsample=True)
        # Applied before layer4 only for inputs of 64 pixels or more.
        self.downsample4 = nn.MaxPool2d(2, 2)
        self.layer4 = VGGStage(cfg[3][-1], cfg[4], downsample=False)
        self.num_features = cfg[4][-1]
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the last feature map (after layer4's ReLU)."""
        large = x.shape[-2] >= 64
        x = self.layer0(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        if large:
            x = self.downsample4(x)
        return self.layer4(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> logits (or the pooled feature when ``pre_logits``)."""
        x = self.pool(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@ARCHITECTURES.register_module(name='vgg8')
def vgg8(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0) -> CifarVGG:
    """VGG-8-BN: one conv per stage."""
    return CifarVGG('vgg8', num_classes, in_channels, width_mult)


@ARCHITECTURES.register_module(name='vgg11')
def vgg11(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0) -> CifarVGG:
    """VGG-11-BN (configuration A)."""
    return CifarVGG('vgg11', num_classes, in_channels, width_mult)


@ARCHITECTURES.register_module(name='vgg13')
def vgg13(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0) -> CifarVGG:
    """VGG-13-BN (configuration B)."""
    return CifarVGG('vgg13', num_classes, in_channels, width_mult)


@ARCHITECTURES.register_module(name='vgg16')
def vgg16(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0) -> CifarVGG:
    """VGG-16-BN (configuration D)."""
    return CifarVGG('vgg16', num_classes, in_channels, width_mult)


@ARCHITECTURES.register_module(name='vgg19')
def vgg19(num_classes: int = 100, in_channels: int = 3, width_mult: float = 1.0) -> CifarVGG:
    """VGG-19-BN (configuration E)."""
    return CifarVGG('vgg19', num_classes, in_channels, width_mult)
