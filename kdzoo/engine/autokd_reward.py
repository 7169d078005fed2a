"""Auto-KD's reward, measured on the validation data after every validation:
``R = 1 - (L_CE(p_S, Y) + L_CKA(f_S, f_T))`` with ``L_CKA = 1 - CKA`` (linear CKA between
the student's and the teacher's features over the validation samples; Li et al., ICCV
2023, and the card in PAPERS.md).

:class:`AutoKDRewardHook` runs the distiller's student and its online teacher over the
validation loader (the first ``max_samples`` samples), records the named features with
forward hooks, and logs ``val/autokd/ce`` (mean cross-entropy of the student's logits),
``val/autokd/cka`` and ``val/autokd/autokd_reward`` beside the metric, so they reach
``scalars.json`` and a search's trial attributes (``reward='autokd'`` of the MCTS
searcher reads them). In a search: ``search.proxy.autokd_reward=dict(student=...,
teacher=...)``.
"""
import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from kdzoo.kd.distances.correlation import linear_cka
from kdzoo.registry import HOOKS


def autokd_reward(ce: float, cka: float) -> float:
    """``1 - (CE + (1 - CKA))``."""
    return 1.0 - (ce + (1.0 - cka))


@HOOKS.register_module()
class AutoKDRewardHook(Hook):
    """Log Auto-KD's reward terms after every validation.

    Args:
        student: the student module whose output is ``f_S`` (a path in the student, e.g.
            ``'backbone.pool'``, or ``'backbone.fc'`` for the logits).
        teacher: the teacher module whose output is ``f_T``.
        max_samples: validation samples used (CKA's Gram matrices are m x m).
    """
    priority = 'NORMAL'  # before the LoggerHook writes the validation scalars

    def __init__(self, student: str, teacher: str, max_samples: int = 2000):
        self.student_path = student
        self.teacher_path = teacher
        self.max_samples = int(max_samples)

    def before_train(self, runner) -> None:
        self._distiller(runner)  # fail before training, not after the first epoch

    def _distiller(self, runner):
        from kdzoo.models.recorder import find_module, parse_source
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if getattr(model, 'student', None) is None or getattr(model, 'teacher', None) is None:
            raise ValueError('AutoKDRewardHook needs a Distiller with an online teacher (the '
                             "reward's CKA compares the teacher's features on the validation "
                             'data, which a teacher store does not hold)')
        find_module(model.student, parse_source(self.student_path)[0], 'student')
        find_module(model.teacher, parse_source(self.teacher_path)[0], 'teacher')
        return model

    @torch.no_grad()
    def measure(self, model, loader) -> dict:
        """``dict(ce=, cka=, autokd_reward=)`` of ``model`` over ``loader``."""
        from kdzoo.models.classifier import gt_labels_of
        from kdzoo.models.recorder import FeatureRecorder
        from kdzoo.models.teachers import teacher_forward
        student_rec = FeatureRecorder(model.student, [self.student_path], owner='student')
        teacher_rec = FeatureRecorder(model.teacher, [self.teacher_path], owner='teacher')
        was_training = model.training
        model.eval()
        fs, ft, ces, count = [], [], [], 0
        try:
            for batch in loader:
                data = model.data_preprocessor(batch, False)
                inputs, samples = data['inputs'], data.get('data_samples')
                with student_rec:
                    logits = model.student(inputs, samples, mode='tensor')
                    fs.append(student_rec.get(self.student_path).flatten(1).float().cpu())
                with teacher_rec:
                    teacher_forward(model.teacher, inputs, samples)
                    ft.append(teacher_rec.get(self.teacher_path).flatten(1).float().cpu())
                labels = gt_labels_of(samples)
                ces.append(F.cross_entropy(logits.float(), labels.to(logits.device),
                                           reduction='none').cpu())
                count += len(labels)
                if count >= self.max_samples:
                    break
        finally:
            student_rec.remove()
            teacher_rec.remove()
            model.train(was_training)
        m = min(count, self.max_samples)
        ce = float(torch.cat(ces)[:m].double().mean())
        cka = float(linear_cka(torch.cat(fs)[:m].double(), torch.cat(ft)[:m].double()))
        return dict(ce=ce, cka=cka, autokd_reward=autokd_reward(ce, cka))

    def after_val_epoch(self, runner, metrics=None) -> None:
        values = self.measure(self._distiller(runner), runner.val_dataloader)
        for key, value in values.items():
            runner.message_hub.update_scalar(f'val/autokd/{key}', value)
        runner.logger.info('Auto-KD reward: ' + ', '.join(f'{k} {v:.4f}'
                                                          for k, v in values.items()))


__all__ = ['AutoKDRewardHook', 'autokd_reward']
