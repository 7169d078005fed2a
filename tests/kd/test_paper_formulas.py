"""Every library entry that names a paper, pinned against that paper's official code.

Each test computes the loss of a method with an independent reference written here after
the paper's equations and its official code (mdistiller for KD / DKD / AT / SP, DIST_KD,
TorchDistiller / MMRazor for CWD, logit-standardization-KD, KDEP, Kornblith et al. for CKA),
on fixed seeded inputs, in a setting where swapping two parts of the formula changes the
value (two weights that differ, N != C, H != W, a non-trivial temperature). Each test also
checks that the swapped / wrong variant gives a clearly different value, so it can fail.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from kdzoo.kd import DistillTerm, build_distance, build_transform
from kdzoo.kd.distances import linear_cka

D64 = torch.float64


def rand(shape, seed, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=D64) * scale + shift


def assert_differs(a, b, rel=1e-3):
    a, b = float(a), float(b)
    assert abs(a - b) > rel * max(abs(a), abs(b), 1e-12), (a, b)


# --- KD (Hinton et al. 2015), mdistiller's kd_loss -----------------------------------------


def ref_kd_loss(logits_student, logits_teacher, temperature):
    log_pred_student = F.log_softmax(logits_student / temperature, dim=1)
    pred_teacher = F.softmax(logits_teacher / temperature, dim=1)
    loss = F.kl_div(log_pred_student, pred_teacher, reduction='none').sum(1).mean()
    return loss * temperature**2


def test_kd_matches_mdistiller():
    s, t = rand((5, 7), 0, 3.0), rand((5, 7), 1, 3.0)
    tau, weight = 4.0, 0.9
    got = DistillTerm(distance='kl', tau=tau, weight=weight)(s, t)
    ref = weight * ref_kd_loss(s, t, tau)
    torch.testing.assert_close(got, ref)
    # the other direction, KL(p_s || p_t), is a different loss
    assert_differs(got, weight * ref_kd_loss(t, s, tau))
    assert_differs(DistillTerm(distance='rkl', tau=tau, weight=weight)(s, t), ref)


# --- DKD (Zhao et al., CVPR 2022), mdistiller's dkd_loss + warm-up -------------------------


def ref_dkd_loss(logits_student, logits_teacher, target, alpha, beta, temperature):
    gt_mask = torch.zeros_like(logits_student).scatter_(1, target.unsqueeze(1), 1).bool()
    other_mask = ~gt_mask

    def cat_mask(p):
        return torch.cat([(p * gt_mask).sum(1, keepdim=True),
                          (p * other_mask).sum(1, keepdim=True)], dim=1)

    pred_student = cat_mask(F.softmax(logits_student / temperature, dim=1))
    pred_teacher = cat_mask(F.softmax(logits_teacher / temperature, dim=1))
    tckd = (F.kl_div(torch.log(pred_student), pred_teacher, reduction='sum')
            * temperature**2 / target.shape[0])
    pred_teacher_part2 = F.softmax(logits_teacher / temperature - 1000.0 * gt_mask, dim=1)
    log_pred_student_part2 = F.log_softmax(logits_student / temperature - 1000.0 * gt_mask,
                                           dim=1)
    nckd = (F.kl_div(log_pred_student_part2, pred_teacher_part2, reduction='sum')
            * temperature**2 / target.shape[0])
    return alpha * tckd + beta * nckd


def test_dkd_matches_mdistiller():
    s, t = rand((6, 5), 2, 2.0), rand((6, 5), 3, 2.0)
    labels = torch.tensor([0, 4, 1, 1, 3, 2])
    alpha, beta, tau, warmup = 1.0, 8.0, 4.0, 20
    term = DistillTerm(distance=dict(type='dkd', alpha=alpha, beta=beta, warmup=warmup),
                       tau=tau)
    epoch0 = 3  # MMEngine's 0-based epoch; mdistiller counts epochs from 1
    got = term(s, t, gt_labels=labels, epoch=epoch0)
    ref = min((epoch0 + 1) / warmup, 1.0) * ref_dkd_loss(s, t, labels, alpha, beta, tau)
    torch.testing.assert_close(got, ref)
    # alpha weighs TCKD, beta NCKD: swapping them changes the value
    swapped = min((epoch0 + 1) / warmup, 1.0) * ref_dkd_loss(s, t, labels, beta, alpha, tau)
    assert_differs(got, swapped)
    # the warm-up uses mdistiller's 1-based epoch
    assert_differs(got, min(epoch0 / warmup, 1.0) * ref_dkd_loss(s, t, labels, alpha, beta, tau))
    # past the warm-up the factor is 1
    torch.testing.assert_close(term(s, t, gt_labels=labels, epoch=50),
                               ref_dkd_loss(s, t, labels, alpha, beta, tau))


# --- DIST (Huang et al., NeurIPS 2022), official dist_kd.py --------------------------------


def ref_pearson_correlation(a, b, eps=1e-8):
    a = a - a.mean(1).unsqueeze(1)
    b = b - b.mean(1).unsqueeze(1)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def ref_inter_class_relation(y_s, y_t):
    return 1 - ref_pearson_correlation(y_s, y_t).mean()


def ref_intra_class_relation(y_s, y_t):
    return ref_inter_class_relation(y_s.transpose(0, 1), y_t.transpose(0, 1))


def ref_dist(z_s, z_t, beta, gamma, tau):
    y_s = (z_s / tau).softmax(dim=1)
    y_t = (z_t / tau).softmax(dim=1)
    inter_loss = tau**2 * ref_inter_class_relation(y_s, y_t)
    intra_loss = tau**2 * ref_intra_class_relation(y_s, y_t)
    return beta * inter_loss + gamma * intra_loss


def test_dist_matches_official_with_beta_ne_gamma():
    s, t = rand((6, 5), 4, 3.0), rand((6, 5), 5, 3.0)  # N = 6 != C = 5
    beta, gamma, tau = 1.0, 2.0, 4.0
    got = DistillTerm(distance=dict(type='dist', beta=beta, gamma=gamma), tau=tau)(s, t)
    ref = ref_dist(s, t, beta, gamma, tau)
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-9)
    # the swapped weighting (beta on the per-class / column relation) is a different loss
    assert_differs(got, ref_dist(s, t, gamma, beta, tau))
    # the distance alone (tau = 1 in the term) is the official loss with tau = 1
    torch.testing.assert_close(build_distance(dict(type='dist', beta=beta, gamma=gamma))(s, t),
                               ref_dist(s, t, beta, gamma, 1.0), rtol=1e-6, atol=1e-9)


def test_dist_inter_class_relation_is_pearson_after_softmax():
    # DIST's inter-class relation = the `pearson` distance on softmax_C outputs (rows)
    s, t = rand((6, 5), 6, 2.0), rand((6, 5), 7, 2.0)
    tau = 3.0
    term = DistillTerm(transforms=['softmax_C'], distance='pearson', tau=tau)
    ys, yt = (s / tau).softmax(1), (t / tau).softmax(1)
    torch.testing.assert_close(term(s, t), tau**2 * ref_inter_class_relation(ys, yt),
                               rtol=1e-6, atol=1e-9)
    assert_differs(term(s, t), tau**2 * ref_intra_class_relation(ys, yt))
    only_inter = DistillTerm(distance=dict(type='dist', beta=1.0, gamma=0.0), tau=tau)
    torch.testing.assert_close(only_inter(s, t), term(s, t))


# --- Pearson correlation -------------------------------------------------------------------


def test_pearson_is_per_sample_correlation():
    s, t = rand((5, 7), 8), rand((5, 7), 9)
    ref = 0.0
    for n in range(5):
        x, y = s[n] - s[n].mean(), t[n] - t[n].mean()
        ref += 1 - float((x * y).sum() / math.sqrt(float((x**2).sum() * (y**2).sum())))
    got = build_distance('pearson')(s, t)
    assert math.isclose(float(got), ref / 5, rel_tol=1e-10)
    # the per-column (over the batch) correlation is a different value
    columns = 1 - ref_pearson_correlation(s.t(), t.t()).mean()
    assert_differs(got, columns)
    # rank 4: one correlation per sample over all C*H*W values
    s4, t4 = rand((3, 2, 3, 4), 10), rand((3, 2, 3, 4), 11)
    torch.testing.assert_close(build_distance('pearson')(s4, t4),
                               1 - ref_pearson_correlation(s4.reshape(3, -1),
                                                           t4.reshape(3, -1)).mean())


# --- linear CKA (Kornblith et al., ICML 2019), as in Auto-KD's reward ------------------------


def ref_linear_cka(x, y):
    m = x.shape[0]
    k, l = x @ x.t(), y @ y.t()  # noqa: E741
    h = torch.eye(m, dtype=D64) - torch.ones(m, m, dtype=D64) / m

    def hsic(a, b):
        return torch.trace(a @ h @ b @ h) / (m - 1)**2

    return hsic(k, l) / torch.sqrt(hsic(k, k) * hsic(l, l))


def test_cka_matches_hsic_definition():
    x = rand((10, 6), 12, 1.0, 3.0)  # m = 10 samples, 6 features, non-zero means
    y = rand((10, 6), 13, 2.0, -2.0) + x.flip(1)
    got = build_distance('cka')(x, y)
    ref = 1 - ref_linear_cka(x, y)
    torch.testing.assert_close(got, ref)
    # linear_cka (Auto-KD's reward) also takes different feature dims, p = 6 != q = 4
    torch.testing.assert_close(linear_cka(x, y[:, :4]), ref_linear_cka(x, y[:, :4]))
    # without centring over the samples (or centring over the features) it differs
    k, l = x @ x.t(), y @ y.t()  # noqa: E741
    uncentred = 1 - (k * l).sum() / (k.norm() * l.norm())
    assert_differs(got, uncentred)
    xf, yf = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    kf, lf = xf @ xf.t(), yf @ yf.t()
    assert_differs(got, 1 - (kf * lf).sum() / (kf.norm() * lf.norm()))
    # rank 4 inputs are flattened per sample
    x4, y4 = rand((8, 2, 3, 2), 14, 1.0, 1.0), rand((8, 2, 3, 2), 15)
    torch.testing.assert_close(build_distance('cka')(x4, y4),
                               1 - ref_linear_cka(x4.reshape(8, -1), y4.reshape(8, -1)))


# --- AT (Zagoruyko & Komodakis, ICLR 2017), official at / at_loss ---------------------------


def ref_at(x):
    return F.normalize(x.pow(2).mean(1).view(x.size(0), -1))


def ref_at_loss(x, y):
    return (ref_at(x) - ref_at(y)).pow(2).mean()


def test_at_matches_official():
    s, t = rand((3, 4, 5, 6), 16), rand((3, 4, 5, 6), 17, 2.0)  # C = 4, H = 5 != W = 6
    ref = ref_at_loss(s, t)
    torch.testing.assert_close(build_distance('at')(s, t), ref)
    torch.testing.assert_close(DistillTerm(transforms=['satt'], distance='l2')(s, t), ref)
    # attention over the positions per channel (the C / HW roles swapped) is different
    assert_differs(DistillTerm(transforms=['catt'], distance='l2')(s, t), ref)
    # so is the loss of the un-normalised maps
    assert_differs((s.pow(2).mean(1) - t.pow(2).mean(1)).pow(2).mean(), ref)


# --- CWD (Shu et al., ICCV 2021), official ChannelWiseDivergence --------------------------


def ref_cwd(preds_s, preds_t, tau, loss_weight):
    n, c, h, w = preds_s.shape
    softmax_pred_t = F.softmax(preds_t.reshape(-1, w * h) / tau, dim=1)
    logsoftmax = torch.nn.LogSoftmax(dim=1)
    loss = torch.sum(softmax_pred_t * logsoftmax(preds_t.reshape(-1, w * h) / tau)
                     - softmax_pred_t * logsoftmax(preds_s.reshape(-1, w * h) / tau)) * tau**2
    return loss_weight * loss / (c * n)


def test_cwd_matches_official():
    s, t = rand((2, 3, 4, 5), 18, 2.0), rand((2, 3, 4, 5), 19, 2.0)  # H = 4 != W = 5
    tau, weight = 4.0, 3.0
    term = DistillTerm(transforms=['channel_dist'], distance='kl', tau=tau, weight=weight)
    ref = ref_cwd(s, t, tau, weight)
    torch.testing.assert_close(term(s, t), ref)
    # distributions over the channels at each position (the other axis) differ
    assert_differs(DistillTerm(distance='kl', tau=tau, weight=weight)(s, t), ref)
    # and so does the other KL direction
    assert_differs(ref_cwd(t, s, tau, weight), ref)


# --- SP (Tung & Mori, ICCV 2019), mdistiller's similarity_loss ---------------------------


def ref_sp(f_s, f_t):
    bsz = f_s.shape[0]
    g_s = F.normalize(f_s.view(bsz, -1) @ f_s.view(bsz, -1).t())
    g_t = F.normalize(f_t.view(bsz, -1) @ f_t.view(bsz, -1).t())
    return ((g_t - g_s) ** 2).sum() / (bsz * bsz)


def test_sp_matches_official():
    s, t = rand((5, 3, 2, 4), 20), rand((5, 6, 2, 4), 21)  # feature dims may differ
    ref = ref_sp(s, t)
    torch.testing.assert_close(DistillTerm(transforms=['sample_sim'], distance='l2')(s, t), ref)
    # the cosine-similarity matrix (features normalised before the product) differs
    fs, ft = F.normalize(s.reshape(5, -1)), F.normalize(t.reshape(5, -1))
    assert_differs(((fs @ fs.t() - ft @ ft.t())**2).mean(), ref)


# --- Logit standardization KD (Sun et al., CVPR 2024), official normalize + kd_loss ---------


def ref_ls_kd(logits_student, logits_teacher, temperature, unbiased=True):
    def normalize(logit):
        mean = logit.mean(dim=-1, keepdims=True)
        stdv = logit.std(dim=-1, keepdims=True, unbiased=unbiased)
        return (logit - mean) / (1e-7 + stdv)

    return ref_kd_loss(normalize(logits_student), normalize(logits_teacher), temperature)


def test_logit_standardization_matches_official():
    s, t = rand((4, 6), 22, 3.0, 1.0), rand((4, 6), 23, 5.0, -2.0)
    tau = 3.0
    term = DistillTerm(transforms=[dict(type='standardize', t=tau)], distance='kl', tau=tau)
    ref = ref_ls_kd(s, t, tau)
    torch.testing.assert_close(term(s, t), ref, rtol=1e-5, atol=1e-9)
    # the biased std (the paper's 1/K) and the temperature before the z-score differ
    assert_differs(ref_ls_kd(s, t, tau, unbiased=False), ref)
    assert_differs(DistillTerm(transforms=['standardize'], distance='kl', tau=tau)(s, t), ref)


# --- KDEP (He et al., CVPR 2022), official teacher transform + L2_loss_FKD -----------------


def kdep_teacher_features(seed=24):
    """Pooled teacher features (N=40, D_t=12) with a non-zero mean and very unequal
    channel scales (the situation KDEP's transformation module addresses)."""
    scales = torch.tensor([30.0, 10.0, 6.0, 3.0, 2.0, 1.0, 0.8, 0.5, 0.3, 0.2, 0.1, 0.05],
                          dtype=D64)
    mix, _ = torch.linalg.qr(rand((12, 12), seed + 1))
    return (rand((40, 12), seed) * scales) @ mix.t() + rand((12, ), seed + 2, 1.0, 4.0)


def ref_svd_projection(t, k):
    """KDEP's gen_svd_weights + teacher forward: centred SVD, top-k right singular vectors.
    Singular vectors have no sign; kdzoo fixes each one's largest-magnitude entry to be
    positive, so the reference does the same."""
    mean = t.mean(0)
    _, _, vh = torch.linalg.svd(t - mean, full_matrices=False)
    v = vh.t()[:, :k]
    idx = v.abs().argmax(0)
    v = v * torch.sign(v[idx, torch.arange(k)])
    return (t - mean) @ v


def ref_pts(feat, T, n):  # noqa: N803
    return torch.sign(feat) * torch.pow(torch.abs(feat / T), 1 / n)


def test_kdep_svd_pts_matches_official():
    t = kdep_teacher_features()
    s = rand((40, 5), 30, 2.0)
    loss_w = 20.0
    term = DistillTerm(transforms=[dict(type='svd', out_dim=5), 'pts'], distance='l2',
                       weight=loss_w)
    term.transforms[0].fit(t)
    target = ref_pts(ref_svd_projection(t, 5), 0.1, 3.0)  # the defaults: KDEP's T, n
    ref = loss_w * F.mse_loss(s, target, reduction='mean')
    torch.testing.assert_close(term(s, t), ref)
    # the uncentred projection, PTS on both sides, or T and n swapped all differ
    uncentred = DistillTerm(transforms=[dict(type='svd', out_dim=5, center=False), 'pts'],
                            distance='l2', weight=loss_w)
    uncentred.transforms[0].fit(t)
    assert_differs(uncentred(s, t), ref)
    both = DistillTerm(transforms=[dict(type='svd', out_dim=5), dict(type='pts', apply_to='both')],
                       distance='l2', weight=loss_w)
    both.transforms[0].fit(t)
    assert_differs(both(s, t), ref)
    assert_differs(loss_w * F.mse_loss(s, ref_pts(ref_svd_projection(t, 5), 3.0, 0.1)), ref)


def test_kdep_pts_formula_with_asymmetric_t_n():
    x = rand((3, 7), 31, 2.0)
    for T, n in ((0.2, 2.0), (0.03, 3.0), (4.0, 0.5)):  # noqa: N806
        got = build_transform(dict(type='pts', T=T, n=n))(x)
        torch.testing.assert_close(got, ref_pts(x, T, n))
    assert_differs(build_transform(dict(type='pts', T=0.2, n=2.0))(x).abs().sum(),
                   ref_pts(x, 2.0, 0.2).abs().sum())
    s, t = rand((3, 7), 32), rand((3, 7), 33)
    out_s, out_t = build_transform(dict(type='pts', T=0.2, n=2.0)).pair(s, t)
    assert torch.equal(out_s, s)  # KDEP transforms the teacher side only
    torch.testing.assert_close(out_t, ref_pts(t, 0.2, 2.0))


def test_kdep_sn_sm_match_card():
    t = ref_svd_projection(kdep_teacher_features(), 5)
    pre = kdep_teacher_features()  # the features before the SVD alignment
    s = rand((40, 5), 34, 3.0)
    var = t.var(0, unbiased=False)
    # SN: each teacher channel divided by its std; the student unchanged
    sn = build_transform('sn').fit(t).eval()
    out_s, out_t = sn.pair(s, t)
    assert torch.equal(out_s, s)
    torch.testing.assert_close(out_t, t / torch.sqrt(var + 1e-5))
    torch.testing.assert_close(out_t.std(0, unbiased=False), torch.ones(5, dtype=D64),
                               atol=1e-5, rtol=0)
    ref = F.mse_loss(s, t / torch.sqrt(var + 1e-5))
    term = DistillTerm(transforms=['sn'], distance='l2')
    term.transforms[0].fit(t)
    term.eval()
    torch.testing.assert_close(term(s, t), ref)
    both = DistillTerm(transforms=[dict(type='sn', apply_to='both')], distance='l2')
    both.transforms[0].fit(t)
    both.eval()
    assert_differs(both(s, t), ref)
    # SM: every teacher channel rescaled to the max channel std before the alignment
    s_max = pre.var(0, unbiased=False).max().sqrt()
    sm = build_transform('sm').fit(t, pre_alignment=pre).eval()
    out_s, out_t = sm.pair(s, t)
    assert torch.equal(out_s, s)
    torch.testing.assert_close(out_t, t * s_max / torch.sqrt(var + 1e-5))
    # the max std *after* the alignment is a different target
    assert_differs(s_max, var.max().sqrt())


def test_kdep_interpolation_matches_official_nearest():
    t = rand((3, 10), 35)  # D_t = 10 -> D_s = 4
    s = rand((3, 4), 36)
    out_s, out_t = build_transform('interp').pair(s, t)
    assert torch.equal(out_s, s)
    # F.interpolate(feat.view(N, 1, D_t), size=D_s): channel j <- floor(j * D_t / D_s)
    torch.testing.assert_close(out_t, t[:, [0, 2, 5, 7]])
    linear = build_transform(dict(type='interp', mode='linear')).pair(s, t)[1]
    assert not torch.allclose(linear, out_t)


@pytest.mark.parametrize('name', ['dist', 'dkd', 'cka', 'at', 'pearson', 'kl', 'barlow'])
def test_distance_formulas_name_their_source(name):
    meta = build_distance(name).metadata()
    assert meta['formula'] and meta['source']
