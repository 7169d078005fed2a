"""One distill term: ``tau^2 * weight * D(T(A_s / tau), T(A_t / tau))``."""
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from .base import ConfigLike, build_distance, build_transform, check_chain

#: The keys of a distill-term config (an entry of a Distiller's ``distill_terms``, or a
#: search-space template's fixed part): the student / teacher tensors it compares and the
#: arguments of :class:`DistillTerm`.
TERM_KEYS = ('student', 'teacher', 'distance', 'transforms', 'weight', 'tau', 'connector',
             'name')


class DistillTerm(nn.Module):
    """A distill term between a student and a teacher tensor.

    Args:
        transforms: the chain T, registry names or config dicts (``'no'`` is identity).
        distance: the distance D, a registry name or config dict.
        weight: loss weight W.
        tau: temperature; both tensors are divided by it before T, and the loss is
            multiplied by ``tau**2`` so gradients keep their scale (Hinton et al.).
        connector: optional module (from ``CONNECTORS``) applied to the student tensor
            first, to reach the teacher's shape.
        name: used in error messages and loss names.
    """

    def __init__(self,
                 distance: ConfigLike,
                 transforms: Sequence[ConfigLike] = (),
                 weight: float = 1.0,
                 tau: float = 1.0,
                 connector: Optional[nn.Module] = None,
                 name: str = 'term'):
        super().__init__()
        if tau <= 0:
            raise ValueError(f'tau must be > 0, got {tau}')
        self.transforms = nn.ModuleList(build_transform(t) for t in transforms)
        self.distance = build_distance(distance)
        self.weight = float(weight)
        self.tau = float(tau)
        self.connector = connector
        self.name = name

    def check(self, input_rank: int) -> None:
        """Raise if the chain cannot take a tensor of ``input_rank``."""
        check_chain(list(self.transforms), self.distance, input_rank)

    def transform_pair(self, s: torch.Tensor,
                       t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Apply the chain T to the (student, teacher) pair, one transform at a time."""
        for transform in self.transforms:
            s, t = transform.pair(s, t)
        return s, t

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, **context) -> torch.Tensor:
        raw_student_shape = tuple(student.shape)
        if self.connector is not None:
            student = self.connector(student, teacher.shape)
        s, t = self.transform_pair(student / self.tau, teacher / self.tau)
        if s.shape != t.shape:
            hint = (f'add connector=dict(type="ConvConnector", in_channels='
                    f'{raw_student_shape[1]}, out_channels={teacher.shape[1]}) to the term'
                    if len(raw_student_shape) == 4 else
                    f'add connector=dict(type="LinearConnector", in_channels='
                    f'{raw_student_shape[1]}, out_channels={teacher.shape[1]}) to the term')
            raise ValueError(
                f'distill term {self.name!r}: shape mismatch; student feature '
                f'{raw_student_shape} -> {tuple(s.shape)} after transforms, teacher feature '
                f'{tuple(teacher.shape)} -> {tuple(t.shape)}. Pick modules with matching '
                f'shapes (tools/misc/print_modules.py CONFIG lists them) or {hint}.')
        return self.tau**2 * self.weight * self.distance(s, t, **context)
