"""Architectures registered in ``ARCHITECTURES`` (students and teachers alike): the CIFAR
knowledge-distillation zoo (CRD, mdistiller) and wrappers of timm / torchvision.

Every zoo model takes ``num_classes`` and ``in_channels``, accepts inputs of any size
(adaptive pooling), and follows timm's interface: ``forward(x)`` -> logits,
``forward_features(x)`` -> the last feature map, ``forward_head(feat)`` -> logits, with
``num_features`` / ``num_classes`` attributes. Hook points share names across the zoo:
``layer1`` ... ``layer3`` (``layer4`` / ``layer0`` where present), ``pool`` (the pooled
``(N, num_features)`` penultimate feature) and ``fc`` (the classifier).
"""
from .cifar_resnet import (BasicBlock, CifarResNet, resnet8, resnet8x4, resnet14, resnet20,
                           resnet32, resnet32x4, resnet44, resnet56, resnet110)
from .external import TimmModel, TorchvisionModel, adapt_conv_weight, replace_first_conv
from .mobilenetv2 import CifarMobileNetV2, InvertedResidual, mobilenetv2, mobilenetv2_half
from .shufflenetv1 import ChannelShuffle, CifarShuffleNetV1, ShuffleV1Block, shufflenetv1
from .shufflenetv2 import (CifarShuffleNetV2, ShuffleV2Block, ShuffleV2DownBlock,
                           shufflenetv2)
from .vgg import VGG_CFGS, CifarVGG, VGGStage, vgg8, vgg11, vgg13, vgg16, vgg19
from .wrn import WideBasicBlock, WideResNet, wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2

#: The CIFAR zoo's registered names (``ARCHITECTURES`` also holds TimmModel and
#: TorchvisionModel).
ZOO_MODELS = (
    'resnet8', 'resnet14', 'resnet20', 'resnet32', 'resnet44', 'resnet56', 'resnet110',
    'resnet8x4', 'resnet32x4', 'wrn_16_1', 'wrn_16_2', 'wrn_40_1', 'wrn_40_2', 'vgg8',
    'vgg11', 'vgg13', 'vgg16', 'vgg19', 'mobilenetv2', 'mobilenetv2_half', 'shufflenetv1',
    'shufflenetv2')

__all__ = [
    'ZOO_MODELS', 'BasicBlock', 'CifarResNet', 'resnet8', 'resnet14', 'resnet20', 'resnet32',
    'resnet44', 'resnet56', 'resnet110', 'resnet8x4', 'resnet32x4', 'WideBasicBlock',
    'WideResNet', 'wrn_16_1', 'wrn_16_2', 'wrn_40_1', 'wrn_40_2', 'VGG_CFGS', 'VGGStage',
    'CifarVGG', 'vgg8', 'vgg11', 'vgg13', 'vgg16', 'vgg19', 'InvertedResidual',
    'CifarMobileNetV2', 'mobilenetv2', 'mobilenetv2_half', 'ChannelShuffle', 'ShuffleV1Block',
    'CifarShuffleNetV1', 'shufflenetv1', 'ShuffleV2Block', 'ShuffleV2DownBlock',
    'CifarShuffleNetV2', 'shufflenetv2', 'TimmModel', 'TorchvisionModel', 'adapt_conv_weight',
    'replace_first_conv'
]
