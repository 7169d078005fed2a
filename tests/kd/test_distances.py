"""Distances against hand-computed numbers and independent reference formulas."""
import math

import pytest
import torch

from kdzoo.kd import Distance, build_distance, registered
from kdzoo.kd.distances import dkd_components, linear_cka
from kdzoo.registry import DISTANCES

D64 = torch.float64


def all_distance_names():
    return sorted(registered(DISTANCES))


def rand(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=D64)


def test_library_size_and_metadata():
    names = all_distance_names()
    assert len(names) >= 10
    required = {'kl', 'l1', 'l2', 'mse', 'smooth_l1', 'cosine', 'pearson', 'dist', 'barlow',
                'cka', 'soft_ce', 'dkd', 'at'}
    assert required <= set(names)
    for name in names:
        cls = DISTANCES.get(name)
        assert issubclass(cls, Distance)
        assert cls.metadata()['formula'].strip(), name
    assert set(registered(DISTANCES, needs_labels=True)) == {'dkd'}


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError) as err:
        build_distance('kll')
    assert 'Valid names' in str(err.value) and 'pearson' in str(err.value)


def test_shape_mismatch_and_rank_errors():
    with pytest.raises(ValueError, match='equal shapes'):
        build_distance('l2')(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match='DISTDistance'):
        build_distance('dist')(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))


# --- point-wise ----------------------------------------------------------------------------

S_FIXED = torch.tensor([[0.0, 1.0, -2.0], [3.0, 0.5, 1.0]], dtype=D64)
T_FIXED = torch.tensor([[0.5, -1.0, -2.0], [1.0, 0.0, 4.0]], dtype=D64)
# differences s - t: [-0.5, 2, 0, 2, 0.5, -3]


def test_pointwise_hand_numbers():
    l1 = build_distance('l1')(S_FIXED, T_FIXED)
    assert math.isclose(float(l1), (0.5 + 2 + 0 + 2 + 0.5 + 3) / 6)
    l2 = build_distance('l2')(S_FIXED, T_FIXED)
    assert math.isclose(float(l2), (0.25 + 4 + 0 + 4 + 0.25 + 9) / 6)
    assert math.isclose(float(build_distance('mse')(S_FIXED, T_FIXED)), float(l2))
    # beta = 1: |d| < 1 -> 0.5 d^2, else |d| - 0.5
    sl1 = build_distance('smooth_l1')(S_FIXED, T_FIXED)
    assert math.isclose(float(sl1), (0.125 + 1.5 + 0 + 1.5 + 0.125 + 2.5) / 6)
    # beta = 2.5: |d| < 2.5 -> 0.5 d^2 / 2.5, else |d| - 1.25
    sl2 = build_distance(dict(type='smooth_l1', beta=2.5))(S_FIXED, T_FIXED)
    ref = (0.25 / 5 + 4 / 5 + 0 + 4 / 5 + 0.25 / 5 + (3 - 1.25)) / 6
    assert math.isclose(float(sl2), ref)


def test_cosine_hand_numbers_and_scale_invariance():
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=D64)
    t = torch.tensor([[0.0, 2.0], [2.0, 2.0]], dtype=D64)
    assert math.isclose(float(build_distance('cosine')(s, t)), (1.0 + 0.0) / 2, abs_tol=1e-12)
    a, b = rand((4, 3, 2, 2), 0), rand((4, 3, 2, 2), 1)
    cos = build_distance('cosine')
    scale = torch.tensor([0.5, 3.0, 10.0, 1e-2], dtype=D64).view(4, 1, 1, 1)
    torch.testing.assert_close(cos(a * scale, b * 7.0), cos(a, b))


def test_pearson_invariances_and_value():
    a, b = rand((4, 6), 0), rand((4, 6), 1)
    p = build_distance('pearson')
    base = p(a, b)
    shift = torch.tensor([1.0, -5.0, 2.0, 0.3], dtype=D64).view(4, 1)
    scale = torch.tensor([0.1, 4.0, 2.0, 9.0], dtype=D64).view(4, 1)
    torch.testing.assert_close(p(a * scale + shift, b - 3.0), base)
    torch.testing.assert_close(p(a, 2.0 * b + shift), base)
    # explicit Pearson for sample 0
    x, y = a[2], b[2]
    xc, yc = x - x.mean(), y - y.mean()
    r = (xc * yc).sum() / math.sqrt(float((xc**2).sum() * (yc**2).sum()))
    single = p(a[2:3], b[2:3])
    torch.testing.assert_close(single, 1 - r)
    assert float(p(a, a)) < 1e-12 and abs(float(p(a, -a)) - 2.0) < 1e-12


# --- divergences -----------------------------------------------------------------------------


def _softmax_rows(x):
    e = torch.exp(x - x.max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


def test_kl_rank2_and_rank4_semantics():
    s, t = rand((3, 5), 0), rand((3, 5), 1)
    ps, pt = _softmax_rows(s), _softmax_rows(t)
    ref = sum(float((pt[n] * (pt[n].log() - ps[n].log())).sum()) for n in range(3)) / 3
    assert math.isclose(float(build_distance('kl')(s, t)), ref, rel_tol=1e-10)
    # rank 4: a distribution over dim 1 at every position, mean over N and positions
    s4, t4 = rand((2, 4, 3, 2), 2), rand((2, 4, 3, 2), 3)
    total = 0.0
    for n in range(2):
        for h in range(3):
            for w in range(2):
                ps, pt = torch.softmax(s4[n, :, h, w], 0), torch.softmax(t4[n, :, h, w], 0)
                total += float((pt * (pt / ps).log()).sum())
    assert math.isclose(float(build_distance('kl')(s4, t4)), total / 12, rel_tol=1e-10)


def test_soft_ce_rkl_js():
    s, t = rand((3, 5), 0), rand((3, 5), 1)
    ps, pt = _softmax_rows(s), _softmax_rows(t)
    entropy_t = -(pt * pt.log()).sum(1).mean()
    torch.testing.assert_close(build_distance('soft_ce')(s, t),
                               build_distance('kl')(s, t) + entropy_t)
    rkl = (ps * (ps.log() - pt.log())).sum(1).mean()
    torch.testing.assert_close(build_distance('rkl')(s, t), rkl)
    m = (ps + pt) / 2
    js = 0.5 * ((pt * (pt / m).log()).sum(1) + (ps * (ps / m).log()).sum(1)).mean()
    torch.testing.assert_close(build_distance('js')(s, t), js)
    torch.testing.assert_close(build_distance('js')(t, s), js)
    assert float(js) <= math.log(2)


# --- DKD ---------------------------------------------------------------------------------


def test_dkd_decomposition_identity():
    s, t = rand((6, 7), 0) * 3, rand((6, 7), 1) * 3
    labels = torch.tensor([0, 3, 6, 2, 2, 5])
    tckd, nckd = dkd_components(s, t, labels)
    for n in range(6):
        ps, pt = torch.softmax(s[n], 0), torch.softmax(t[n], 0)
        g = int(labels[n])
        # explicit per-sample pieces
        bs = torch.stack([ps[g], 1 - ps[g]])
        bt = torch.stack([pt[g], 1 - pt[g]])
        tckd_ref = (bt * (bt / bs).log()).sum()
        keep = [j for j in range(7) if j != g]
        qs, qt = ps[keep] / ps[keep].sum(), pt[keep] / pt[keep].sum()
        nckd_ref = (qt * (qt / qs).log()).sum()
        torch.testing.assert_close(tckd[n], tckd_ref)
        torch.testing.assert_close(nckd[n], nckd_ref)
        kl = (pt * (pt / ps).log()).sum()
        torch.testing.assert_close(kl, tckd[n] + (1 - pt[g]) * nckd[n])
    dkd = build_distance(dict(type='dkd', alpha=1.0, beta=1.0, warmup=0))
    torch.testing.assert_close(dkd(s, t, gt_labels=labels), tckd.mean() + nckd.mean())


def test_dkd_weights_warmup_and_labels():
    s, t = rand((4, 5), 0), rand((4, 5), 1)
    labels = torch.tensor([1, 0, 4, 2])
    tckd, nckd = dkd_components(s, t, labels)
    full = 2.0 * tckd.mean() + 8.0 * nckd.mean()
    dkd = build_distance(dict(type='dkd', alpha=2.0, beta=8.0, warmup=20))
    torch.testing.assert_close(dkd(s, t, gt_labels=labels, epoch=4), full * 5 / 20)
    torch.testing.assert_close(dkd(s, t, gt_labels=labels, epoch=30), full)
    torch.testing.assert_close(dkd(s, t, gt_labels=labels), full)  # no epoch: no warm-up
    by_iter = build_distance(dict(type='dkd', warmup=100, warmup_by='iter', beta=8.0))
    torch.testing.assert_close(by_iter(s, t, gt_labels=labels, iter=9, epoch=50),
                               (tckd.mean() + 8.0 * nckd.mean()) * 0.1)
    with pytest.raises(ValueError, match='gt_labels'):
        dkd(s, t)
    assert build_distance('dkd').needs_labels


def test_dkd_stable_for_confident_logits():
    s = torch.tensor([[60.0, 0.0, -3.0]], dtype=D64)
    t = torch.tensor([[50.0, 1.0, 0.0]], dtype=D64)
    tckd, nckd = dkd_components(s, t, torch.tensor([0]))
    assert torch.isfinite(tckd).all() and torch.isfinite(nckd).all()
    qs, qt = torch.softmax(s[0, 1:], 0), torch.softmax(t[0, 1:], 0)
    torch.testing.assert_close(nckd[0], (qt * (qt / qs).log()).sum())


# --- DIST, Barlow, AT ------------------------------------------------------------------------


def _pearson(x, y):
    xc, yc = x - x.mean(), y - y.mean()
    return (xc * yc).sum() / torch.sqrt((xc**2).sum() * (yc**2).sum())


def test_dist_matches_explicit_loops():
    s, t = rand((5, 4), 0), rand((5, 4), 1)
    ys, yt = torch.softmax(s, 1), torch.softmax(t, 1)
    # DIST: inter-class = per sample, over the classes (rows), weighted by beta;
    # intra-class = per class, over the batch (columns), weighted by gamma
    inter = 1 - sum(_pearson(ys[n], yt[n]) for n in range(5)) / 5
    intra = 1 - sum(_pearson(ys[:, i], yt[:, i]) for i in range(4)) / 4
    dist = build_distance(dict(type='dist', beta=2.0, gamma=0.5))
    torch.testing.assert_close(dist(s, t), 2.0 * inter + 0.5 * intra)
    assert abs(float(dist(s, t)) - float(0.5 * inter + 2.0 * intra)) > 1e-3


def test_barlow_matches_explicit_cross_correlation():
    s, t = rand((6, 2, 2), 0), rand((6, 2, 2), 1)
    lambd, eps = 0.3, 1e-5
    zs, zt = s.reshape(6, -1), t.reshape(6, -1)
    zs = (zs - zs.mean(0)) / torch.sqrt(zs.var(0, unbiased=False) + eps)
    zt = (zt - zt.mean(0)) / torch.sqrt(zt.var(0, unbiased=False) + eps)
    c = torch.zeros(4, 4, dtype=D64)
    for i in range(4):
        for j in range(4):
            c[i, j] = (zs[:, i] * zt[:, j]).sum() / 6
    ref = sum((1 - c[i, i])**2 for i in range(4))
    ref = ref + lambd * sum(c[i, j]**2 for i in range(4) for j in range(4) if i != j)
    torch.testing.assert_close(build_distance(dict(type='barlow', lambd=lambd))(s, t), ref / 4)


def test_at_distance_equals_satt_then_l2():
    from kdzoo.kd import DistillTerm
    s, t = rand((2, 3, 4, 4), 0), rand((2, 3, 4, 4), 1)
    ref = DistillTerm(distance='l2', transforms=['satt'])(s, t)
    torch.testing.assert_close(build_distance('at')(s, t), ref)


# --- CKA -----------------------------------------------------------------------------------


def _cka_explicit(x, y):
    m = x.shape[0]
    h = torch.eye(m, dtype=D64) - torch.ones(m, m, dtype=D64) / m
    k, l = x @ x.t(), y @ y.t()  # noqa: E741

    def hsic(a, b):
        return torch.trace(a @ h @ b @ h) / (m - 1)**2

    return hsic(k, l) / torch.sqrt(hsic(k, k) * hsic(l, l))


def test_linear_cka_properties():
    x, y = rand((12, 5), 0), rand((12, 7), 1)
    torch.testing.assert_close(linear_cka(x, x), torch.tensor(1.0, dtype=D64))
    torch.testing.assert_close(linear_cka(x, y), _cka_explicit(x, y))
    q, _ = torch.linalg.qr(rand((5, 5), 2))
    torch.testing.assert_close(linear_cka(x @ q * 3.5, y), linear_cka(x, y))
    torch.testing.assert_close(linear_cka(x, y * 0.01), linear_cka(x, y))
    torch.testing.assert_close(linear_cka(x + 4.0, y), linear_cka(x, y))  # centring
    value = float(linear_cka(x, y))
    assert 0.0 <= value <= 1.0
    cka = build_distance('cka')
    x4 = rand((6, 2, 2, 2), 3)
    torch.testing.assert_close(cka(x4, x4 * 2), torch.tensor(0.0, dtype=D64), atol=1e-12, rtol=0)
    y4 = rand((6, 2, 2, 2), 4)
    torch.testing.assert_close(cka(x4, y4), 1 - _cka_explicit(x4.reshape(6, -1),
                                                              y4.reshape(6, -1)))


# --- gradients of every distance ---------------------------------------------------------


@pytest.mark.parametrize('name', all_distance_names())
def test_gradcheck_every_distance(name):
    if DISTANCES.get(name).metadata().get('needs_boxes'):
        pytest.skip('needs gt boxes and in_channels: tests/kd/test_det_losses.py')
    dist = build_distance(name).double()
    shapes = {2: (4, 5), 3: (4, 3, 2), 4: (4, 3, 2, 2)}
    for rank in dist.ranks:
        s = rand(shapes[rank], 10 + rank).requires_grad_(True)
        t = rand(shapes[rank], 20 + rank).requires_grad_(True)
        ctx = {}
        if dist.needs_labels:
            ctx = dict(gt_labels=torch.arange(shapes[rank][0]) % shapes[rank][1], epoch=100)

        def fn(a, b):
            return dist(a, b, **ctx)

        assert torch.autograd.gradcheck(fn, (s, t), eps=1e-6, atol=1e-5), (name, rank)
