"""Distill terms built from the library: textbook KD, DKD, and every valid pair."""
import copy
import math

import pytest
import torch

from kdzoo.kd import DistillTerm, registered
from kdzoo.kd.distances import dkd_components
from kdzoo.registry import DISTANCES, KD_TRANSFORMS

D64 = torch.float64
#: transforms that align a wider teacher to the student's channel dim (KDEP)
ALIGNING = {'svd', 'channel_select', 'interp'}


def rand(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=D64)


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_kd_term_equals_textbook_hinton(tau):
    s, t = rand((4, 6), 0) * 3, rand((4, 6), 1) * 3
    term = DistillTerm(transforms=[], distance='kl', tau=tau, weight=0.7)
    total = 0.0
    for n in range(4):
        zs = [math.exp(float(v) / tau) for v in s[n]]
        zt = [math.exp(float(v) / tau) for v in t[n]]
        ps = [v / sum(zs) for v in zs]
        pt = [v / sum(zt) for v in zt]
        total += sum(pt[i] * (math.log(pt[i]) - math.log(ps[i])) for i in range(6))
    expected = 0.7 * tau**2 * total / 4
    assert math.isclose(float(term(s, t)), expected, rel_tol=1e-10)


def test_identity_transform_is_a_noop_in_a_term():
    s, t = rand((3, 5), 0), rand((3, 5), 1)
    a = DistillTerm(transforms=['no', 'no'], distance='kl', tau=2.0)(s, t)
    b = DistillTerm(transforms=[], distance='kl', tau=2.0)(s, t)
    torch.testing.assert_close(a, b)


def test_dkd_term_applies_tau_squared_once():
    s, t = rand((5, 6), 0) * 2, rand((5, 6), 1) * 2
    labels = torch.tensor([0, 1, 2, 3, 5])
    tau = 4.0
    term = DistillTerm(distance=dict(type='dkd', alpha=1.0, beta=8.0, warmup=20), tau=tau)
    tckd, nckd = dkd_components(s / tau, t / tau, labels)
    expected = tau**2 * min((3 + 1) / 20, 1.0) * (tckd.mean() + 8.0 * nckd.mean())
    torch.testing.assert_close(term(s, t, gt_labels=labels, epoch=3), expected)


def test_dist_term_matches_reference_implementation_layout():
    # DIST computes tau^2 * (beta * inter + gamma * intra) on softmax(logits / tau)
    s, t = rand((6, 5), 0), rand((6, 5), 1)
    tau = 4.0
    term = DistillTerm(distance=dict(type='dist', beta=1.0, gamma=3.0), tau=tau)
    ys, yt = torch.softmax(s / tau, 1), torch.softmax(t / tau, 1)

    def pearson(a, b):
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))

    inter = 1 - pearson(ys, yt).mean()  # per sample, over the classes
    intra = 1 - pearson(ys.t(), yt.t()).mean()  # per class, over the batch
    torch.testing.assert_close(term(s, t), tau**2 * (inter + 3.0 * intra))


def test_kdep_svd_term_with_wider_teacher():
    torch.manual_seed(0)
    term = DistillTerm(distance='l2', transforms=['svd', 'sn', 'pts'])
    student = torch.randn(32, 8, requires_grad=True)
    teacher = torch.randn(32, 24)
    loss = term(student, teacher)
    loss.backward()
    svd = term.transforms[0]
    assert svd.basis.shape == (24, 8) and bool(svd.fitted)
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    state = term.state_dict()
    assert {'transforms.0.basis', 'transforms.1.running_var'} <= set(state)


# --- every valid (transform, distance) pair ------------------------------------------------


def _pair_inputs(name, rank):
    g = torch.Generator().manual_seed(0)
    shape = (4, 8, 8, 8) if rank == 4 else (4, 10)
    teacher_shape = list(shape)
    if name in ALIGNING:  # a wider teacher, aligned to the student
        teacher_shape[1] *= 2
    return torch.randn(shape, generator=g), torch.randn(teacher_shape, generator=g)


def _valid_pairs():
    pairs = []
    for rank in (4, 2):
        for t_name in registered(KD_TRANSFORMS):
            for d_name in registered(DISTANCES):
                if DISTANCES.get(d_name).metadata().get('needs_boxes'):
                    continue  # FGD: tests/kd/test_det_losses.py
                try:
                    DistillTerm(distance=d_name, transforms=[t_name]).check(rank)
                except ValueError:
                    continue
                pairs.append((t_name, d_name, rank))
    return pairs


def test_every_valid_pair_trains():
    pairs = _valid_pairs()
    assert len(pairs) > 300
    failures = []
    for t_name, d_name, rank in pairs:
        torch.manual_seed(0)
        term = DistillTerm(distance=d_name, transforms=[t_name], tau=2.0, weight=1.5)
        student, teacher = _pair_inputs(t_name, rank)
        transform = term.transforms[0]
        if hasattr(transform, 'fit') and t_name != 'svd':
            transform.fit(teacher)
        student.requires_grad_(True)
        context = dict(epoch=5, iter=100)
        if term.distance.needs_labels:
            rows, classes = copy.deepcopy(transform)(student.detach()).shape[:2]
            context['gt_labels'] = torch.arange(rows) % classes
        loss = term(student, teacher, **context)
        loss.backward()
        ok = (loss.dim() == 0 and torch.isfinite(loss).item() and student.grad is not None
              and torch.isfinite(student.grad).all().item())
        if not ok:
            failures.append((t_name, d_name, rank, float(loss)))
    assert not failures, failures
