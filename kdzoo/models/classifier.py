"""Image classifier: an MMEngine model around any architecture of ``ARCHITECTURES``."""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import nn

from kdzoo.registry import ARCHITECTURES, MODELS


def build_architecture(cfg: Union[dict, nn.Module]) -> nn.Module:
    """Build a network from ``ARCHITECTURES`` (kdzoo zoo, timm, torchvision) or ``MODELS``."""
    if isinstance(cfg, nn.Module):
        return cfg
    ARCHITECTURES.import_from_location()
    if ARCHITECTURES.get(cfg['type']) is not None:
        return ARCHITECTURES.build(cfg)
    if MODELS.get(cfg['type']) is not None:
        return MODELS.build(cfg)
    names = ', '.join(sorted(ARCHITECTURES.module_dict))
    raise KeyError(f'unknown architecture {cfg["type"]!r}; registered in ARCHITECTURES: '
                   f'{names} (or any MODELS type)')


def gt_labels_of(data_samples) -> Optional[torch.Tensor]:
    """Class labels of a collated classification batch, else None."""
    if isinstance(data_samples, dict) and 'gt_label' in data_samples:
        return data_samples['gt_label']
    return None


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """Classifier whose ``backbone`` maps images to logits.

    Modes: ``tensor`` -> logits; ``loss`` -> ``dict(loss_cls=...)``; ``predict`` -> a list of
    ``dict(pred_score, pred_label[, gt_label])``, what :class:`kdzoo.evaluation.Accuracy` reads.

    Args:
        backbone: architecture config, e.g. ``dict(type='resnet8x4', num_classes=100)``.
        label_smoothing: for the cross-entropy task loss.
        data_preprocessor: defaults to MMEngine's ``ImgDataPreprocessor``.
    """

    def __init__(self,
                 backbone: Union[dict, nn.Module],
                 label_smoothing: float = 0.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = build_architecture(backbone)
        self.label_smoothing = label_smoothing

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = 'tensor'):
        logits = self.backbone(inputs)
        if mode == 'tensor':
            return logits
        labels = gt_labels_of(data_samples)
        if mode == 'loss':
            if labels is None:
                raise ValueError('mode="loss" needs data_samples with a "gt_label" entry')
            return dict(loss_cls=F.cross_entropy(
                logits, labels, label_smoothing=self.label_smoothing))
        if mode == 'predict':
            scores = logits.softmax(dim=1)
            results = []
            for i, score in enumerate(scores):
                result = dict(pred_score=score, pred_label=score.argmax())
                if labels is not None:
                    result['gt_label'] = labels[i]
                results.append(result)
            return results
        raise ValueError(f'invalid mode {mode!r}; valid modes: tensor, loss, predict')
