"""Sparse training (Auto-KD's acceleration 2): a random mask forces a fraction of the
student's weights to zero, the fraction growing on a schedule.

:class:`SparseTrainingHook` keeps one 0/1 mask per weight tensor of the student's
convolutions and linear layers. The target sparsity follows the cubic schedule of Zhu &
Gupta (2017), ``s(t) = s_f * (1 - (1 - (t - t_0) / (t_1 - t_0))^3)`` between the iterations
``t_0 = start * T`` and ``t_1 = end * T`` of a T-iteration run (``start=end=0``: the final
sparsity from the first step), updated every ``interval`` iterations. Each update zeroes a
random subset of the still-active weights of every layer (the paper's masks are random, not
by magnitude), drawn from a generator seeded by ``(run seed, iteration)``, so a resumed run
draws what an uninterrupted one drew. After every optimizer step the masked weights are set
to zero again. The masks are saved in the checkpoint (``sparse_masks``) and restored by
``--resume``.

On dense kernels (PyTorch's CPU and GPU convolutions) the zeros save neither time nor
memory; they change what the student learns. ``tools/analysis/sparse_kd_fmnist.py``
measures both.
"""
import math
from typing import Dict, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from kdzoo.datasets.seeding import step_seed
from kdzoo.registry import HOOKS

MASKS_KEY = 'sparse_masks'


def cubic_sparsity(final: float, progress: float) -> float:
    """Zhu & Gupta's schedule at ``progress`` in [0, 1] of the pruning window."""
    progress = min(max(progress, 0.0), 1.0)
    return final * (1.0 - (1.0 - progress) ** 3)


def prunable_weights(model: nn.Module, exclude: Sequence[str] = ()) -> Dict[str, nn.Parameter]:
    """Weights of the convolutions and linear layers of ``model`` by parameter name, but for
    the modules whose names start with one of ``exclude``."""
    weights = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and \
                not any(name == e or name.startswith(e + '.') for e in exclude):
            weights[f'{name}.weight'] = module.weight
    return weights


@HOOKS.register_module()
class SparseTrainingHook(Hook):
    """Random-mask sparse training of the student (or of a plain model).

    Args:
        sparsity: the final fraction of zero weights in every masked layer, in [0, 1).
        start, end: the pruning window as fractions of the run's iterations (cubic
            schedule inside; the final sparsity after it).
        interval: iterations between two mask updates inside the window.
        exclude: module names left dense (e.g. the stem and the classifier:
            ``('backbone.conv1', 'backbone.fc')``).
    """
    priority = 'LOW'  # after the optimizer step of the train loop's update

    def __init__(self, sparsity: float, start: float = 0.0, end: float = 0.0,
                 interval: int = 50, exclude: Sequence[str] = ()):
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f'SparseTrainingHook: sparsity={sparsity} must be in [0, 1)')
        if not 0.0 <= start <= end <= 1.0:
            raise ValueError(f'SparseTrainingHook: need 0 <= start <= end <= 1, got '
                             f'start={start}, end={end}')
        self.sparsity = float(sparsity)
        self.start, self.end = float(start), float(end)
        self.interval = max(1, int(interval))
        self.exclude = tuple(exclude)
        self.masks: Dict[str, torch.Tensor] = {}
        self.current = 0.0

    # -- what is pruned -------------------------------------------------------------------
    @staticmethod
    def target(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        return getattr(model, 'student', None) or model

    def weights(self, runner) -> Dict[str, nn.Parameter]:
        weights = prunable_weights(self.target(runner), self.exclude)
        if not weights:
            raise ValueError('SparseTrainingHook: the model has no convolution or linear '
                             f'weight outside exclude={list(self.exclude)}')
        return weights

    def sparsity_at(self, iteration: int, max_iters: int) -> float:
        if self.end <= 0.0:
            return self.sparsity
        t0, t1 = self.start * max_iters, self.end * max_iters
        return cubic_sparsity(self.sparsity, (iteration - t0) / max(t1 - t0, 1.0))

    # -- masks ----------------------------------------------------------------------------
    def update_masks(self, runner, iteration: int) -> None:
        """Grow every layer's zeros to the schedule's sparsity at ``iteration``."""
        target = self.sparsity_at(iteration, runner.max_iters)
        if target <= self.current and self.masks:
            return
        generator = torch.Generator().manual_seed(step_seed(int(runner.seed or 0), iteration))
        for name, weight in self.weights(runner).items():
            mask = self.masks.get(name)
            if mask is None:
                mask = torch.ones(weight.shape, dtype=torch.bool)
            wanted = math.floor(target * mask.numel())
            extra = wanted - int((~mask).sum())
            if extra > 0:
                active = mask.flatten().nonzero()[:, 0]
                drop = active[torch.randperm(len(active), generator=generator)[:extra]]
                mask = mask.flatten().clone()
                mask[drop] = False
                mask = mask.view(weight.shape)
            self.masks[name] = mask
        self.current = target
        self.apply(runner)

    @torch.no_grad()
    def apply(self, runner) -> None:
        for name, weight in self.weights(runner).items():
            weight.mul_(self.masks[name].to(weight.device, weight.dtype))

    def measured_sparsity(self, runner) -> float:
        """The fraction of exact zeros over the masked weights."""
        weights = self.weights(runner)
        zeros = sum(int((w == 0).sum()) for w in weights.values())
        return zeros / sum(w.numel() for w in weights.values())

    # -- hook points ----------------------------------------------------------------------
    def before_train(self, runner) -> None:
        if self.masks:  # restored from a checkpoint
            self.apply(runner)
        else:
            self.update_masks(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        iteration = runner.iter + 1
        in_window = self.end > 0 and iteration <= self.end * runner.max_iters
        if in_window and iteration % self.interval == 0:
            self.update_masks(runner, iteration)
        else:
            self.apply(runner)
        runner.message_hub.update_scalar('train/sparsity', self.current)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[MASKS_KEY] = dict(masks=self.masks, current=self.current)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(MASKS_KEY)
        if state is not None:
            self.masks = dict(state['masks'])
            self.current = float(state['current'])


__all__ = ['SparseTrainingHook', 'cubic_sparsity', 'prunable_weights', 'MASKS_KEY']
