"""Decoupled knowledge distillation (Zhao et al., CVPR 2022)."""
from typing import Tuple

import torch

from kdzoo.registry import DISTANCES
from ..base import Distance


def dkd_components(s: torch.Tensor, t: torch.Tensor,
                   labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-sample TCKD and NCKD of ``(N, C)`` logits (already divided by the temperature).

    TCKD = KL(b_t || b_s) of the binary (target, non-target) distributions
    ``b = [p_gt, 1 - p_gt]``; NCKD = KL(q_t || q_s) of the distributions over the non-target
    classes ``q_j = p_j / (1 - p_gt)``. Both are computed from log-sum-exps (stable when
    ``p_gt -> 1``). They satisfy ``KL(p_t || p_s) = TCKD + (1 - p_t,gt) * NCKD``.
    """
    if labels.shape != s.shape[:1]:
        raise ValueError(f'dkd needs one label per row: logits {tuple(s.shape)}, labels '
                         f'{tuple(labels.shape)}')
    gt = torch.zeros_like(s, dtype=torch.bool)
    gt.scatter_(1, labels.long().view(-1, 1), True)

    def parts(x):
        lse_all = torch.logsumexp(x, dim=1)
        lse_non = torch.logsumexp(x.masked_fill(gt, float('-inf')), dim=1)
        x_gt = x.gather(1, labels.long().view(-1, 1)).squeeze(1)
        log_b = torch.stack([x_gt - lse_all, lse_non - lse_all], dim=1)  # log [p_gt, 1-p_gt]
        log_q = x - lse_non.unsqueeze(1)  # log q_j for j != gt (garbage at gt, masked)
        return log_b, log_q

    log_bs, log_qs = parts(s)
    log_bt, log_qt = parts(t)
    tckd = (log_bt.exp() * (log_bt - log_bs)).sum(dim=1)
    terms = log_qt.exp() * (log_qt - log_qs)
    nckd = torch.where(gt, torch.zeros_like(terms), terms).sum(dim=1)
    return tckd, nckd


@DISTANCES.register_module(name='dkd')
class DKDDistance(Distance):
    """DKD: ``warm * (alpha * TCKD + beta * NCKD)``, batch means; needs ``gt_labels``.

    The inputs are logits already divided by ``tau`` and the distill term multiplies by
    ``tau^2``, so DKD's own ``T^2`` is *not* applied here (use the term's ``tau=4`` for the
    paper's setting). Linear warm-up: ``warm = min((epoch + 1) / warmup, 1)`` from the
    context's 0-based ``epoch`` (``warmup_by='epoch'``, as in DKD, 20 epochs), or
    ``min((iter + 1) / warmup, 1)`` with ``warmup_by='iter'``; ``warmup=0`` or a context
    without the counter disables it.
    """
    ranks = (2, )
    needs_labels = True
    formula = ('D(s, t) = min((epoch+1)/warmup, 1) * (alpha TCKD + beta NCKD), '
               'TCKD = KL(b_t||b_s), NCKD = KL(q_t||q_s)')
    source = 'DKD (Zhao et al., CVPR 2022)'

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, warmup: int = 20,
                 warmup_by: str = 'epoch'):
        super().__init__()
        if warmup_by not in ('epoch', 'iter'):
            raise ValueError(f"dkd warmup_by must be 'epoch' or 'iter', got {warmup_by!r}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.warmup = int(warmup)
        self.warmup_by = warmup_by

    def warmup_factor(self, **context) -> float:
        step = context.get(self.warmup_by)
        if self.warmup <= 0 or step is None:
            return 1.0
        return min((float(step) + 1.0) / self.warmup, 1.0)

    def distance(self, s, t, **context):
        labels = context.get('gt_labels')
        if labels is None:
            raise ValueError("distance 'dkd' needs gt_labels in the context")
        if isinstance(labels, (list, tuple)):
            labels = torch.as_tensor(labels)
        labels = labels.to(s.device)
        tckd, nckd = dkd_components(s, t, labels)
        loss = self.alpha * tckd.mean() + self.beta * nckd.mean()
        return self.warmup_factor(**context) * loss
