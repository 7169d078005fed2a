"""One distill term: ``tau^2 * weight * D(T(A_s / tau), T(A_t / tau))``."""
from typing import List, Optional, Sequence, Union

import torch
from torch import nn

from .base import ConfigLike, build_distance, build_transform, check_chain


class DistillTerm(nn.Module):
    """A distill term between a student and a teacher tensor.

    Args:
        transforms: the chain T, registry names or config dicts (``'no'`` is identity).
        distance: the distance D, a registry name or config dict.
        weight: loss weight W.
        tau: temperature; both tensors are divided by it before T, and the loss is
            multiplied by ``tau**2`` so gradients keep their scale (Hinton et al.).
    """

    def __init__(self,
                 distance: ConfigLike,
                 transforms: Sequence[ConfigLike] = (),
                 weight: float = 1.0,
                 tau: float = 1.0):
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be > 0, got {tau}')
        self.transforms = nn.ModuleList(build_transform(t) for t in transforms)
        self.distance = build_distance(distance)
        self.weight = float(weight)
        self.tau = float(tau)

    def check(self, input_rank: int) -> None:
        """Raise if the chain cannot take a tensor of ``input_rank``."""
        check_chain(list(self.transforms), self.distance, input_rank)

    def apply_transforms(self, x: torch.Tensor) -> torch.Tensor:
        for transform in self.transforms:
            x = transform(x)
        return x

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, **context) -> torch.Tensor:
        s = self.apply_transforms(student / self.tau)
        t = self.apply_transforms(teacher / self.tau)
        return self.tau**2 * self.weight * self.distance(s, t, **context)
