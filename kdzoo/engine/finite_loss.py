"""The always-on divergence check: :class:`FiniteLossHook` stops training at the first
non-finite loss, not at the next logging interval.

Every training run has it: ``configs/_base_/default_runtime.py`` lists it as
``default_hooks.finite_loss`` and ``tools/train.py`` adds it to configs that lack the key;
``--cfg-options default_hooks.finite_loss=None`` turns it off. A stopped run exits non-zero
with :class:`NonFiniteLossError` (iteration, epoch and the non-finite loss keys) and leaves
``WORK_DIR/diverged.json`` for the search's trial runner::

    {"reason": "non-finite loss at iteration 3 (epoch 1, batch 3/8): loss_cls=nan, loss=nan",
     "kind": "non-finite", "iter": 3, "epoch": 1, "batch": 3,
     "keys": ["loss_cls", "loss"], "losses": {"loss_cls": "nan", "loss": "nan"}}
"""
import math
import os
import os.path as osp
from typing import Dict, Optional

from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook

from kdzoo.registry import HOOKS
from .proxy_hooks import _as_float, _write_json

#: Written into the work dir when a run stops at a non-finite loss.
DIVERGED_FILE = 'diverged.json'


class NonFiniteLossError(FloatingPointError):
    """Raised by :class:`FiniteLossHook`: a loss was NaN or infinite."""


def non_finite_losses(outputs: Optional[dict]) -> Dict[str, float]:
    """The entries of a ``train_step`` output whose name contains ``loss`` (MMEngine's
    convention for losses) and whose value is NaN or infinite, as floats; the terms first,
    the total ``loss`` (non-finite whenever a term is) last."""
    bad = {}
    for name, value in (outputs or {}).items():
        if 'loss' not in name:
            continue
        try:
            value = _as_float(value)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(value):
            bad[name] = value
    return dict(sorted(bad.items(), key=lambda item: item[0] == 'loss'))


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop at the first iteration whose loss (any ``train_step`` output named ``*loss*``)
    is NaN or infinite: write ``WORK_DIR/diverged.json`` and raise
    :class:`NonFiniteLossError` naming the iteration and the loss keys.

    With several processes the finding is shared (one all-reduce of a flag per iteration),
    so every rank stops at the same iteration. It runs after a search's
    :class:`~kdzoo.engine.LossSuppressionHook` (priority 55 against NORMAL = 50), which then
    records the stop as a suppression, as it did before. A stale ``diverged.json`` is
    removed when training starts.
    """
    priority = 55  # after LossSuppressionHook (NORMAL), before LoggerHook (BELOW_NORMAL)

    def before_train(self, runner) -> None:
        path = osp.join(runner.work_dir, DIVERGED_FILE)
        if getattr(runner, 'rank', 0) == 0 and osp.isfile(path):
            os.remove(path)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        bad = non_finite_losses(outputs)
        if get_world_size() > 1:
            import torch
            flag = torch.tensor([1.0 if bad else 0.0])
            all_reduce(flag, op='max')
            if flag.item() == 0:
                return
        elif not bad:
            return
        self.stop(runner, batch_idx, bad)

    def stop(self, runner, batch_idx: int, bad: Dict[str, float]) -> None:
        iteration, epoch = int(runner.iter) + 1, int(getattr(runner, 'epoch', 0)) + 1
        loop = getattr(runner, 'train_loop', None)
        batches = None
        try:
            batches = len(loop.dataloader)
        except (AttributeError, TypeError):
            pass
        where = f'epoch {epoch}, batch {batch_idx + 1}' + (f'/{batches}' if batches else '')
        found = (', '.join(f'{k}={v}' for k, v in bad.items()) if bad
                 else 'on another process')
        reason = f'non-finite loss at iteration {iteration} ({where}): {found}'
        if getattr(runner, 'rank', 0) == 0:
            _write_json(osp.join(runner.work_dir, DIVERGED_FILE),
                        dict(reason=reason, kind='non-finite', iter=iteration, epoch=epoch,
                             batch=batch_idx + 1, keys=list(bad), losses=bad))
        runner.logger.error(reason)
        raise NonFiniteLossError(f'{reason} (status: {osp.join(runner.work_dir, DIVERGED_FILE)}'
                                 '; turn the check off with '
                                 '--cfg-options default_hooks.finite_loss=None)')


__all__ = ['FiniteLossHook', 'NonFiniteLossError', 'non_finite_losses', 'DIVERGED_FILE']
