"""The Distiller: a student, a frozen teacher and a list of distill terms."""
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.registry import DefaultScope
from torch import nn
import torch.nn.functional as F

from kdzoo.kd import DistillTerm
from kdzoo.kd.term import TERM_KEYS
from kdzoo.registry import CONNECTORS, MODELS
from kdzoo.utils.config_keys import check_keys, missing_keys
from .classifier import gt_labels_of
from .recorder import FeatureRecorder
from .teachers import build_teacher, teacher_forward


@MODELS.register_module()
class DistillDataPreprocessor(BaseDataPreprocessor):
    """Prepares the student's inputs and, when the teacher needs other ones, the teacher's.

    By default the teacher sees exactly the student's inputs (the same crop, flip and mixup:
    FunMatch's consistent teaching). With ``teacher_preprocessor`` the teacher gets its own
    normalisation of the same raw batch; ``teacher_input_size`` resizes its inputs.
    """

    def __init__(self, student_preprocessor: nn.Module,
                 teacher_preprocessor: Optional[nn.Module] = None,
                 teacher_input_size: Optional[Sequence[int]] = None):
        super().__init__()
        self.student_preprocessor = student_preprocessor
        self.teacher_preprocessor = teacher_preprocessor
        self.teacher_input_size = tuple(teacher_input_size) if teacher_input_size else None

    def forward(self, data: dict, training: bool = False) -> dict:
        out = self.student_preprocessor(data, training)
        if not training:
            return out
        if self.teacher_preprocessor is not None:
            teacher_inputs = self.teacher_preprocessor(data, False)['inputs']
        elif self.teacher_input_size is not None:
            teacher_inputs = out['inputs']
        else:
            return out
        if self.teacher_input_size is not None:
            teacher_inputs = F.interpolate(teacher_inputs, size=self.teacher_input_size,
                                           mode='bilinear', align_corners=False)
        return dict(out, teacher_inputs=teacher_inputs)


@MODELS.register_module()
class Distiller(BaseModel):
    """Knowledge distillation of ``teacher`` into ``student``.

    Each entry of ``distill_terms`` is one line of config::

        dict(student='backbone.layer3', teacher='backbone.layer3',
             transforms=['satt'], distance='l2', weight=1000.0, tau=1.0,
             connector=None, name='at')

    computing ``tau^2 * weight * D(T(A_s/tau), T(A_t/tau))`` on the outputs of the named
    modules, captured by forward hooks. ``path[i]`` picks item ``i`` of a tuple output.

    Args:
        student: any MMEngine model config (a kdzoo classifier, an mmdet detector, an mmseg
            segmentor); it keeps its task loss, scaled by ``student_loss_weight``.
        teacher: see :mod:`kdzoo.models.teachers`. It is frozen, kept in eval mode, run
            under ``no_grad`` for features only, and never saved in checkpoints.
        teacher_checkpoint: weights of the teacher (checked when the distiller is built).
        teacher_preprocess: ``'student'`` (default: the teacher sees the student's inputs)
            or ``'own'`` (its own data preprocessor on the same raw batch).
        teacher_input_size: resize the teacher's inputs to (H, W), e.g. a high-resolution
            teacher.
        data_preprocessor: the student's, when its own config has none (MMEngine's Runner
            passes a config's top-level ``data_preprocessor`` here).
    """

    def __init__(self,
                 student: Union[dict, BaseModel],
                 teacher: Union[str, dict, nn.Module],
                 distill_terms: Sequence[dict],
                 teacher_checkpoint: Optional[str] = None,
                 student_loss_weight: float = 1.0,
                 teacher_preprocess: str = 'student',
                 teacher_input_size: Optional[Sequence[int]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if not isinstance(student, nn.Module):
            student = dict(student)
            if data_preprocessor is not None:
                student.setdefault('data_preprocessor', data_preprocessor)
            student = MODELS.build(student)
        extra = dict(checkpoint=teacher_checkpoint) if teacher_checkpoint else {}
        teacher = build_teacher(teacher, **extra)
        if teacher_preprocess not in ('student', 'own'):
            raise ValueError(f'teacher_preprocess={teacher_preprocess!r}; valid: '
                             f'"student", "own"')
        teacher_preprocessor = None
        if teacher_preprocess == 'own':
            teacher_preprocessor = getattr(teacher, 'data_preprocessor', None)
            if teacher_preprocessor is None:
                raise ValueError('teacher_preprocess="own" but the teacher has no '
                                 'data_preprocessor')
        preprocessor = DistillDataPreprocessor(student.data_preprocessor,
                                               teacher_preprocessor, teacher_input_size)
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)
        self.student = student
        # Outside the module tree on purpose: not in state_dict / checkpoints, not in the
        # optimizer, not wrapped by DDP. ``_apply`` and ``train`` below keep it in step.
        object.__setattr__(self, 'teacher', teacher)
        if not distill_terms:
            raise ValueError('distill_terms is empty: give at least one term')
        self.student_loss_weight = float(student_loss_weight)
        self.term_specs = [self._check_term_cfg(i, cfg) for i, cfg in enumerate(distill_terms)]
        self.terms = nn.ModuleList(self._build_term(spec) for spec in self.term_specs)
        self.student_recorder = FeatureRecorder(
            self.student, [s['student'] for s in self.term_specs], owner='student')
        self.teacher_recorder = FeatureRecorder(
            self.teacher, [s['teacher'] for s in self.term_specs], owner='teacher')
        self._ranks_checked = False

    @staticmethod
    def _check_term_cfg(index: int, cfg: dict) -> dict:
        cfg = dict(cfg)
        where = f'distill_terms[{index}]'
        check_keys(cfg, TERM_KEYS, where)
        missing_keys(cfg, ('student', 'teacher', 'distance'), where)
        cfg.setdefault('name', f'kd{index}')
        return cfg

    def _build_term(self, spec: dict) -> DistillTerm:
        connector = spec.get('connector')
        if isinstance(connector, dict):
            with DefaultScope.overwrite_default_scope('kdzoo'):
                connector = CONNECTORS.build(connector)
        return DistillTerm(distance=spec['distance'], transforms=spec.get('transforms', ()),
                           weight=spec.get('weight', 1.0), tau=spec.get('tau', 1.0),
                           connector=connector, name=spec['name'])

    # Keep the out-of-tree teacher on the student's device / dtype and always in eval mode.
    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.teacher._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, inputs, data_samples=None, mode: str = 'tensor',
                teacher_inputs: Optional[torch.Tensor] = None):
        if mode == 'loss':
            return self.loss(inputs, data_samples, teacher_inputs)
        return self.student(inputs, data_samples, mode=mode)

    def loss(self, inputs, data_samples=None,
             teacher_inputs: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        losses = {}
        with self.student_recorder:
            if self.student_loss_weight > 0:
                task_losses = self.student(inputs, data_samples, mode='loss')
                for name, value in task_losses.items():
                    losses[name] = _scale(value, self.student_loss_weight) \
                        if 'loss' in name else value
            else:
                self.student(inputs, data_samples, mode='tensor')
        with torch.no_grad(), self.teacher_recorder:
            teacher_forward(self.teacher, inputs if teacher_inputs is None else teacher_inputs,
                            data_samples)
        context = self._context(data_samples)
        for spec, term in zip(self.term_specs, self.terms):
            student_feat = self.student_recorder.get(spec['student'])
            teacher_feat = self.teacher_recorder.get(spec['teacher'])
            if not self._ranks_checked:
                term.check(teacher_feat.dim())
            losses[f'loss_{spec["name"]}'] = term(student_feat, teacher_feat.detach(),
                                                   **context)
        self._ranks_checked = True
        return losses

    @staticmethod
    def _context(data_samples) -> dict:
        hub = MessageHub.get_current_instance()
        return dict(gt_labels=gt_labels_of(data_samples),
                    epoch=hub.get_info('epoch', 0), iter=hub.get_info('iter', 0))


def _scale(value, factor: float):
    if isinstance(value, (list, tuple)):
        return type(value)(v * factor for v in value)
    return value * factor
