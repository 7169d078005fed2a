"""Top-k classification accuracy."""
from typing import Any, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from kdzoo.registry import METRICS


def _field(sample: Any, key: str):
    if isinstance(sample, dict):
        if key not in sample:
            raise KeyError(f'Accuracy: data sample has no {key!r} (keys: {sorted(sample)})')
        return sample[key]
    if not hasattr(sample, key):
        raise KeyError(f'Accuracy: data sample {type(sample).__name__} has no {key!r}')
    return getattr(sample, key)


def _label(value: Any) -> int:
    t = torch.as_tensor(value).reshape(-1)
    if t.numel() != 1:
        raise ValueError(f'Accuracy: gt_label must hold one class index, got {t.numel()}')
    return int(t[0])


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy in percent.

    ``process`` takes the model's ``'predict'`` output: a sequence of samples (dicts, or
    objects with attributes) each holding ``pred_score`` (1-D tensor of class scores) and
    ``gt_label`` (int or 0-d / 1-element tensor). A sample counts as top-k correct when
    ``gt_label`` is among the indices returned by ``torch.topk(pred_score, k)``, so ties
    are broken the same way every time. ``k`` larger than the number of classes is clipped
    to it (top-k is then 100%).

    Only a per-sample correctness row is kept between ``process`` and
    ``compute_metrics``, not the score vectors.

    Args:
        topk (int | sequence of int): The k's. Defaults to ``(1,)``.
        prefix (str, optional): Prefix of the result keys (``'<prefix>/accuracy/top1'``).
            Defaults to ``''`` (none).
        collect_device (str): Where results are gathered across ranks. Defaults to
            ``'cpu'``.

    Returns from ``evaluate``: ``{'accuracy/top1': ..., 'accuracy/top5': ...}``.
    """

    default_prefix: Optional[str] = ''

    def __init__(self, topk: Union[int, Sequence[int]] = (1,), prefix: Optional[str] = '',
                 collect_device: str = 'cpu', collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix,
                         collect_dir=collect_dir)
        if isinstance(topk, int):
            topk = (topk,)
        topk = tuple(int(k) for k in topk)
        if not topk or min(topk) < 1:
            raise ValueError(f'Accuracy: topk must be positive ints, got {topk}')
        self.topk = topk

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        scores: List[torch.Tensor] = []
        labels: List[int] = []
        for sample in data_samples:
            score = torch.as_tensor(_field(sample, 'pred_score')).detach().reshape(-1)
            scores.append(score)
            labels.append(_label(_field(sample, 'gt_label')))
        if not scores:
            return
        num_classes = {s.numel() for s in scores}
        if len(num_classes) != 1:
            raise ValueError(f'Accuracy: pred_score lengths differ within a batch: '
                             f'{sorted(num_classes)}')
        num_classes = num_classes.pop()
        score = torch.stack(scores).float()
        gt = torch.tensor(labels, dtype=torch.long, device=score.device)
        maxk = min(max(self.topk), num_classes)
        pred = score.topk(maxk, dim=1).indices  # (B, maxk)
        hit = pred == gt[:, None]  # (B, maxk), at most one True per row
        correct = torch.stack(
            [hit[:, :min(k, num_classes)].any(dim=1) for k in self.topk], dim=1).cpu().numpy()
        for row in correct:
            self.results.append(row)

    def compute_metrics(self, results: list) -> dict:
        if not results:
            return {f'accuracy/top{k}': 0.0 for k in self.topk}
        correct = np.stack(results).astype(np.float64)  # (N, len(topk))
        acc = correct.mean(axis=0) * 100.0
        return {f'accuracy/top{k}': float(a) for k, a in zip(self.topk, acc)}


__all__ = ['Accuracy']
