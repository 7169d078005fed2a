"""Dense-prediction terms pinned against the official formulas on fixed inputs:
SKD's pair-wise similarity loss (structure_knowledge_distillation's
``CriterionPairWiseforWholeFeatAfterPool``), SKD's pixel-wise KD, and DIST on per-pixel
logits (DIST's ``inter_class_relation`` / ``intra_class_relation`` on N*H*W rows)."""
import torch
import torch.nn.functional as F
from mmengine.config import Config

from kdzoo.kd import DistillTerm
from kdzoo.utils import register_all_modules

register_all_modules()
D64 = torch.float64


def rand(shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=D64) * scale


def assert_differs(a, b, rel=1e-3):
    a, b = float(a), float(b)
    assert abs(a - b) > rel * max(abs(a), abs(b), 1e-12), (a, b)


# --- SKD (Liu et al., CVPR 2019), the official code written out -----------------------------

def ref_similarity(feat):
    norm = (feat.pow(2).sum(dim=1).sqrt().reshape(feat.shape[0], 1, feat.shape[2],
                                                  feat.shape[3]) + 1e-8).detach()
    feat = (feat / norm).reshape(feat.shape[0], feat.shape[1], -1)
    return torch.einsum('icm,icn->imn', feat, feat)


def ref_pairwise(f_s, f_t, scale):
    f_t = f_t.detach()
    patch_w, patch_h = int(f_t.shape[2] * scale), int(f_t.shape[3] * scale)
    pool = torch.nn.MaxPool2d(kernel_size=(patch_w, patch_h), stride=(patch_w, patch_h),
                              padding=0, ceil_mode=True)
    f_s, f_t = pool(f_s), pool(f_t)
    err = (ref_similarity(f_t) - ref_similarity(f_s)).pow(2)
    return (err / (f_t.shape[-1] * f_t.shape[-2]) ** 2 / f_t.shape[0]).sum()


def ref_pixelwise(z_s, z_t):
    n, c, h, w = z_s.shape
    soft_t = F.softmax(z_t.permute(0, 2, 3, 1).reshape(-1, c), dim=1)
    log_s = F.log_softmax(z_s.permute(0, 2, 3, 1).reshape(-1, c), dim=1)
    return (-soft_t * log_s).sum() / (h * w) / n


def test_pixel_sim_matches_skd_pairwise_values_and_gradients():
    # student and teacher differ in width; 7x9 maps pooled with ceil_mode into 2x2 patches
    for scale in (0.25, 0.5):
        s = rand((2, 5, 7, 9), 0).requires_grad_()
        t = rand((2, 8, 7, 9), 1, 2.0)
        term = DistillTerm(transforms=[dict(type='pixel_sim', scale=scale, detach_norm=True)],
                           distance='mse')
        got = term(s, t)
        want = ref_pairwise(s, t, scale)
        torch.testing.assert_close(got, want)
        g_got, = torch.autograd.grad(got, s)
        s2 = s.detach().clone().requires_grad_()
        g_want, = torch.autograd.grad(ref_pairwise(s2, t, scale), s2)
        torch.testing.assert_close(g_got, g_want)
    # the official norm is detached; with gradients through it the gradient differs
    s = rand((2, 5, 6, 6), 2).requires_grad_()
    t = rand((2, 8, 6, 6), 3)
    live = DistillTerm(transforms=[dict(type='pixel_sim', detach_norm=False)], distance='mse')
    g_live, = torch.autograd.grad(live(s, t), s)
    g_off, = torch.autograd.grad(DistillTerm(
        transforms=[dict(type='pixel_sim', detach_norm=True)], distance='mse')(s, t), s)
    assert not torch.allclose(g_live, g_off)


def test_skd_config_terms_match_the_official_weights_and_are_not_interchangeable():
    cfg = Config.fromfile('configs/segmentation/canvas/skd_pspnet_r18_w32_w16_canvas.py')
    pair_cfg, pixel_cfg = cfg.model.distill_terms
    drop = ('student', 'teacher')
    pair = DistillTerm(**{k: v for k, v in pair_cfg.items() if k not in drop})
    pixel = DistillTerm(**{k: v for k, v in pixel_cfg.items() if k not in drop})
    f_s, f_t = rand((2, 4, 8, 8), 4), rand((2, 6, 8, 8), 5)
    z_s, z_t = rand((2, 11, 8, 8), 6), rand((2, 11, 8, 8), 7, 3.0)
    got = pair(f_s, f_t) + pixel(z_s, z_t)
    ref_pair, ref_pixel = ref_pairwise(f_s, f_t, 0.5), ref_pixelwise(z_s, z_t)
    # kl = soft cross-entropy minus the teacher's entropy (a constant for the student)
    soft_t = F.softmax(z_t.permute(0, 2, 3, 1).reshape(-1, 11), dim=1)
    entropy = -(soft_t * soft_t.log()).sum(1).mean()
    torch.testing.assert_close(got, 0.5 * ref_pair + 10.0 * (ref_pixel - entropy))
    assert_differs(got, 10.0 * ref_pair + 0.5 * (ref_pixel - entropy))


# --- DIST (Huang et al., NeurIPS 2022) on pixels ---------------------------------------------

def ref_pearson(a, b, eps=1e-8):
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def ref_dist(z_s, z_t, beta, gamma, tau):
    y_s, y_t = (z_s / tau).softmax(dim=1), (z_t / tau).softmax(dim=1)
    inter = 1 - ref_pearson(y_s, y_t).mean()
    intra = 1 - ref_pearson(y_s.t(), y_t.t()).mean()
    return tau ** 2 * (beta * inter + gamma * intra)


def test_pixel_logits_with_dist_is_dist_over_pixel_rows():
    z_s, z_t = rand((2, 5, 3, 4), 8), rand((2, 5, 3, 4), 9, 2.0)
    rows = lambda z: z.permute(0, 2, 3, 1).reshape(-1, 5)  # noqa: E731
    term = DistillTerm(transforms=['pixel_logits'],
                       distance=dict(type='dist', beta=1.0, gamma=2.0), tau=2.0)
    got = term(z_s, z_t)
    torch.testing.assert_close(got, ref_dist(rows(z_s), rows(z_t), 1.0, 2.0, 2.0),
                               rtol=1e-6, atol=1e-7)
    assert_differs(got, ref_dist(rows(z_s), rows(z_t), 2.0, 1.0, 2.0))
    # the rows are pixels: N*H*W of them, one class vector each
    assert DistillTerm(transforms=['pixel_logits'], distance='mse').transform_pair(
        z_s, z_t)[0].shape == (24, 5)
