"""Detection distances (FGD, PKD) pinned against references written after the official code.

FGD: yzd-v/FGD ``mmdet/distillation/losses/fgd.py`` (``FeatureLoss``), re-written below step
by step (box scaling with floor / ceil, masks filled box by box with slices, features
multiplied by square roots of the weights, ``MSELoss(reduction='sum') / N``, the GcBlock
context with ``matmul``). PKD: MMRazor's ``PKDLoss`` (``norm`` by permute / reshape).
Each value is checked in a setting where swapping two of the loss's weights changes it.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from kdzoo.kd import DistillTerm, build_distance, build_transform
from kdzoo.kd.distances.detection import fgd_attention, fgd_masks

D64 = torch.float64


def rand(shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=D64) * scale


def assert_differs(a, b, rel=1e-3):
    a, b = float(torch.as_tensor(a).detach()), float(torch.as_tensor(b).detach())
    assert abs(a - b) > rel * max(abs(a), abs(b), 1e-12), (a, b)


# --- the official FeatureLoss, step by step ----------------------------------------------

def ref_attention(preds, temp):
    n, c, h, w = preds.shape
    value = torch.abs(preds)
    fea_map = value.mean(axis=1, keepdim=True)
    s_att = (h * w * F.softmax((fea_map / temp).view(n, -1), dim=1)).view(n, h, w)
    channel_map = value.mean(axis=2, keepdim=False).mean(axis=2, keepdim=False)
    c_att = c * F.softmax(channel_map / temp, dim=1)
    return s_att, c_att


def ref_masks(s_att, gt_bboxes, img_metas, h, w):
    n = s_att.shape[0]
    mask_fg = torch.zeros_like(s_att)
    mask_bg = torch.ones_like(s_att)
    wmin, wmax, hmin, hmax = [], [], [], []
    for i in range(n):
        new_boxes = torch.ones_like(gt_bboxes[i])
        new_boxes[:, 0] = gt_bboxes[i][:, 0] / img_metas[i]['img_shape'][1] * w
        new_boxes[:, 2] = gt_bboxes[i][:, 2] / img_metas[i]['img_shape'][1] * w
        new_boxes[:, 1] = gt_bboxes[i][:, 1] / img_metas[i]['img_shape'][0] * h
        new_boxes[:, 3] = gt_bboxes[i][:, 3] / img_metas[i]['img_shape'][0] * h
        wmin.append(torch.floor(new_boxes[:, 0]).int())
        wmax.append(torch.ceil(new_boxes[:, 2]).int())
        hmin.append(torch.floor(new_boxes[:, 1]).int())
        hmax.append(torch.ceil(new_boxes[:, 3]).int())
        area = 1.0 / (hmax[i].view(1, -1) + 1 - hmin[i].view(1, -1)) / (
            wmax[i].view(1, -1) + 1 - wmin[i].view(1, -1))
        for j in range(len(gt_bboxes[i])):
            rows = slice(int(hmin[i][j]), int(hmax[i][j]) + 1)
            cols = slice(int(wmin[i][j]), int(wmax[i][j]) + 1)
            mask_fg[i][rows, cols] = torch.maximum(mask_fg[i][rows, cols], area[0][j])
        mask_bg[i] = torch.where(mask_fg[i] > 0, 0, 1)
        if torch.sum(mask_bg[i]):
            mask_bg[i] /= torch.sum(mask_bg[i])
    return mask_fg, mask_bg


def ref_fea_loss(preds_s, preds_t, mask_fg, mask_bg, c_t, s_t):
    loss_mse = torch.nn.MSELoss(reduction='sum')
    mask_fg = mask_fg.unsqueeze(dim=1)
    mask_bg = mask_bg.unsqueeze(dim=1)
    c_t = c_t.unsqueeze(dim=-1).unsqueeze(dim=-1)
    s_t = s_t.unsqueeze(dim=1)
    fea_t = torch.mul(torch.mul(preds_t, torch.sqrt(s_t)), torch.sqrt(c_t))
    fg_fea_t = torch.mul(fea_t, torch.sqrt(mask_fg))
    bg_fea_t = torch.mul(fea_t, torch.sqrt(mask_bg))
    fea_s = torch.mul(torch.mul(preds_s, torch.sqrt(s_t)), torch.sqrt(c_t))
    fg_fea_s = torch.mul(fea_s, torch.sqrt(mask_fg))
    bg_fea_s = torch.mul(fea_s, torch.sqrt(mask_bg))
    return loss_mse(fg_fea_s, fg_fea_t) / len(mask_fg), loss_mse(bg_fea_s, bg_fea_t) / len(mask_bg)


def ref_mask_loss(c_s, c_t, s_s, s_t):
    return torch.sum(torch.abs(c_s - c_t)) / len(c_s) + torch.sum(torch.abs(s_s - s_t)) / len(s_s)


def ref_spatial_pool(x, conv_mask):
    batch, channel, width, height = x.size()
    input_x = x.view(batch, channel, height * width).unsqueeze(1)
    context_mask = conv_mask(x).view(batch, 1, height * width)
    context_mask = F.softmax(context_mask, dim=2).unsqueeze(-1)
    context = torch.matmul(input_x, context_mask)
    return context.view(batch, channel, 1, 1)


def ref_rela_loss(preds_s, preds_t, block_s, block_t):
    loss_mse = torch.nn.MSELoss(reduction='sum')
    out_s = preds_s + block_s.channel_add(ref_spatial_pool(preds_s, block_s.conv_mask))
    out_t = preds_t + block_t.channel_add(ref_spatial_pool(preds_t, block_t.conv_mask))
    return loss_mse(out_s, out_t) / len(out_s)


def ref_fgd(preds_s, preds_t, gt_bboxes, img_metas, temp, alpha, beta, gamma, lambd,
            block_s, block_t):
    n, c, h, w = preds_s.shape
    s_att_t, c_att_t = ref_attention(preds_t, temp)
    s_att_s, c_att_s = ref_attention(preds_s, temp)
    mask_fg, mask_bg = ref_masks(s_att_t, gt_bboxes, img_metas, h, w)
    fg_loss, bg_loss = ref_fea_loss(preds_s, preds_t, mask_fg, mask_bg, c_att_t, s_att_t)
    mask_loss = ref_mask_loss(c_att_s, c_att_t, s_att_s, s_att_t)
    rela_loss = ref_rela_loss(preds_s, preds_t, block_s, block_t)
    return alpha * fg_loss + beta * bg_loss + gamma * mask_loss + lambd * rela_loss


# Two images of 64 x 48 (h x w) on an 8 x 6 map (stride 8): overlapping boxes (the larger
# value wins), a box on the image border, a sub-cell box; the second image has one box.
IMG_SHAPES = [(64, 48), (64, 48)]
BOXES = [torch.tensor([[4.0, 6.0, 30.0, 40.0], [20.0, 30.0, 28.0, 37.0],
                       [40.0, 50.0, 48.0, 64.0]], dtype=D64),
         torch.tensor([[1.5, 2.5, 3.0, 4.0]], dtype=D64)]
WEIGHTS = dict(temp=0.5, alpha=2.0, beta=0.7, gamma=0.3, lambd=0.05)


def fgd_with_random_context(channels=6, seed=3, **weights):
    torch.manual_seed(seed)
    fgd = build_distance(dict(type='fgd', in_channels=channels, **weights)).double()
    with torch.no_grad():  # the last convs start at zero: make the global part non-trivial
        for block in (fgd.context_s, fgd.context_t):
            block.channel_add[-1].weight.normal_(0.0, 0.5)
            block.channel_add[-1].bias.normal_(0.0, 0.1)
            block.channel_add[1].weight.uniform_(0.5, 1.5)
    return fgd


def test_fgd_matches_the_official_feature_loss():
    s, t = rand((2, 6, 8, 6), 0), rand((2, 6, 8, 6), 1, scale=1.5)
    fgd = fgd_with_random_context(**WEIGHTS)
    got = fgd(s, t, gt_boxes=BOXES, img_shapes=IMG_SHAPES)
    metas = [dict(img_shape=shape) for shape in IMG_SHAPES]
    expected = ref_fgd(s, t, BOXES, metas, block_s=fgd.context_s, block_t=fgd.context_t,
                       **WEIGHTS)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-12)
    # every part counts, each with its own weight: alpha / beta and gamma / lambda swapped
    for a, b in (('alpha', 'beta'), ('gamma', 'lambd'), ('alpha', 'gamma')):
        swapped = dict(WEIGHTS, **{a: WEIGHTS[b], b: WEIGHTS[a]})
        other = fgd_with_random_context(**swapped)
        assert_differs(other(s, t, gt_boxes=BOXES, img_shapes=IMG_SHAPES), got)
    # the temperature reaches the attention
    hot = fgd_with_random_context(**dict(WEIGHTS, temp=2.0))
    assert_differs(hot(s, t, gt_boxes=BOXES, img_shapes=IMG_SHAPES), got)
    # the components, one by one, against the reference
    parts = fgd.components(s, t, gt_boxes=BOXES, img_shapes=IMG_SHAPES)
    s_att_t, c_att_t = ref_attention(t, 0.5)
    s_att_s, c_att_s = ref_attention(s, 0.5)
    mask_fg, mask_bg = ref_masks(s_att_t, BOXES, metas, 8, 6)
    fg, bg = ref_fea_loss(s, t, mask_fg, mask_bg, c_att_t, s_att_t)
    torch.testing.assert_close(parts['fg'], fg, rtol=1e-6, atol=0)
    torch.testing.assert_close(parts['bg'], bg, rtol=1e-6, atol=0)
    torch.testing.assert_close(parts['att'], ref_mask_loss(c_att_s, c_att_t, s_att_s, s_att_t))
    torch.testing.assert_close(parts['glob'],
                               ref_rela_loss(s, t, fgd.context_s, fgd.context_t))


def test_fgd_masks_by_hand():
    # 32 x 32 image, 4 x 4 map: box (0, 0, 8, 8) covers cells 0..1 x 0..1 (area 4), box
    # (9, 17, 15, 23) covers rows 2..3, cols 1..2 (floor 17/8 = 2, ceil 23/8 = 3): area 4
    # too; the third, (16, 0, 32, 6), covers rows 0..1 and cols 2..4 (the map has 4 cols:
    # the official slice stops at the border, but the area counts 2 x 3 cells).
    boxes = [torch.tensor([[0.0, 0.0, 8.0, 8.0], [9.0, 17.0, 15.0, 23.0],
                           [16.0, 0.0, 32.0, 6.0]])]
    fg, bg = fgd_masks(boxes, [(32, 32)], 4, 4)
    expected = torch.tensor([[1 / 4, 1 / 4, 1 / 6, 1 / 6],
                             [1 / 4, 1 / 4, 1 / 6, 1 / 6],
                             [0, 1 / 4, 1 / 4, 0],
                             [0, 1 / 4, 1 / 4, 0]])
    torch.testing.assert_close(fg[0], expected)
    torch.testing.assert_close(bg[0], (expected == 0).float() / 4)
    # no boxes: everything is background, each cell 1 / (H W)
    fg, bg = fgd_masks([torch.zeros(0, 4)], [(32, 32)], 4, 4)
    assert fg.sum() == 0 and torch.allclose(bg, torch.full((1, 4, 4), 1 / 16))
    # the whole map covered: an empty background stays zero
    fg, bg = fgd_masks([torch.tensor([[0.0, 0.0, 32.0, 32.0]])], [(32, 32)], 4, 4)
    assert (fg > 0).all() and bg.sum() == 0


def test_fgd_attention_means_one():
    x = rand((2, 5, 4, 3), 7)
    spatial, channel = fgd_attention(x, 0.5)
    torch.testing.assert_close(spatial.mean(dim=(1, 2)), torch.ones(2, dtype=D64))
    torch.testing.assert_close(channel.mean(dim=1), torch.ones(2, dtype=D64))


def test_fgd_box_scale_batch_input_shape():
    s, t = rand((2, 6, 8, 6), 0), rand((2, 6, 8, 6), 1)
    fgd = fgd_with_random_context()
    by_img = fgd(s, t, gt_boxes=BOXES, img_shapes=IMG_SHAPES)
    fgd.box_scale = 'batch_input_shape'
    same = fgd(s, t, gt_boxes=BOXES, batch_input_shape=(64, 48))
    torch.testing.assert_close(same, by_img)
    # images of 48 x 36 padded to 64 x 48: the official scaling stretches the boxes
    fgd.box_scale = 'img_shape'
    assert_differs(fgd(s, t, gt_boxes=BOXES, img_shapes=[(48, 36)] * 2), by_img)


def test_fgd_gradcheck_and_backward():
    s = rand((2, 4, 5, 4), 0).requires_grad_(True)
    t = rand((2, 4, 5, 4), 1).requires_grad_(True)
    fgd = fgd_with_random_context(channels=4, **WEIGHTS)
    boxes = [b / 64 * 40 for b in BOXES]
    shapes = [(40, 32)] * 2

    def fn(a, b):
        return fgd(a, b, gt_boxes=boxes, img_shapes=shapes)

    assert torch.autograd.gradcheck(fn, (s, t), eps=1e-6, atol=1e-5)
    # in a term (teacher detached, as the distiller passes it): the student and both
    # context blocks get gradients
    fresh = build_distance(dict(type='fgd', in_channels=4))
    term = DistillTerm(distance=fresh, name='fgd')
    student = torch.randn(2, 4, 5, 4, requires_grad=True)
    loss = term(student, torch.randn(2, 4, 5, 4), gt_boxes=[b.float() for b in boxes],
                img_shapes=shapes, gt_labels=None, epoch=0, iter=0)
    loss.backward()
    assert student.grad.abs().sum() > 0
    for name, param in fresh.named_parameters():
        assert param.grad is not None, name
    assert fresh.context_s.channel_add[-1].weight.grad.abs().sum() > 0
    assert fresh.context_t.channel_add[-1].weight.grad.abs().sum() > 0
    assert build_distance(dict(type='fgd', in_channels=4)).metadata()['needs_boxes']


def test_fgd_errors_name_what_is_missing():
    s, t = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    fgd = build_distance(dict(type='fgd', in_channels=4))
    with pytest.raises(ValueError, match='gt_boxes'):
        fgd(s, t)
    with pytest.raises(ValueError, match='gt_boxes'):
        fgd(s, t, gt_boxes=None, gt_labels=torch.tensor([0, 1]))
    boxes = [torch.zeros(0, 4)] * 2
    with pytest.raises(ValueError, match='img_shapes'):
        fgd(s, t, gt_boxes=boxes)
    with pytest.raises(ValueError, match='1 box tensors'):
        fgd(s, t, gt_boxes=boxes[:1], img_shapes=[(8, 8)])
    with pytest.raises(ValueError, match='in_channels=8'):
        fgd(torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4), gt_boxes=boxes,
            img_shapes=[(8, 8)] * 2)
    with pytest.raises(ValueError, match='rank'):
        fgd(torch.randn(2, 4), torch.randn(2, 4), gt_boxes=boxes, img_shapes=[(8, 8)] * 2)
    with pytest.raises(ValueError, match='box_scale'):
        build_distance(dict(type='fgd', in_channels=4, box_scale='pad'))
    with pytest.raises(TypeError, match='in_channels'):
        build_distance('fgd')


# --- PKD: MMRazor's PKDLoss ---------------------------------------------------------------

def ref_pkd_norm(feat):
    n, c, h, w = feat.shape
    feat = feat.permute(1, 0, 2, 3).reshape(c, -1)
    mean = feat.mean(dim=-1, keepdim=True)
    std = feat.std(dim=-1, keepdim=True)
    feat = (feat - mean) / (std + 1e-6)
    return feat.reshape(c, n, h, w).permute(1, 0, 2, 3)


def ref_pkd(preds_s, preds_t, loss_weight=1.0):
    return F.mse_loss(ref_pkd_norm(preds_s), ref_pkd_norm(preds_t)) / 2 * loss_weight


def test_pkd_matches_mmrazor_pkd_loss():
    # channels of very different scales and offsets: a per-sample z-score would not undo them
    scale = torch.tensor([1.0, 10.0, 0.1, 3.0], dtype=D64).view(1, 4, 1, 1)
    s = rand((3, 4, 5, 6), 0) * scale + 2.0
    t = (s + rand((3, 4, 5, 6), 1)) * scale.flip(1) - 1.0
    got = build_distance('pkd')(s, t)
    torch.testing.assert_close(got, ref_pkd(s, t))
    # in a term: weight W gives MMRazor's loss_weight W; the term's tau has no effect
    term = DistillTerm(distance='pkd', weight=6.0, tau=1.0)
    torch.testing.assert_close(term(s, t), ref_pkd(s, t, 6.0))
    # 1 - r per channel over N*H*W values, times (M - 1) / M from the unbiased std
    m = 3 * 5 * 6
    r = torch.stack([torch.corrcoef(torch.stack([s[:, c].flatten(), t[:, c].flatten()]))[0, 1]
                     for c in range(4)])
    torch.testing.assert_close(got, (m - 1) / m * (1 - r).mean(), rtol=1e-5, atol=0)
    # not the existing per-sample standardize + mse (nor its half)
    std = build_transform(dict(type='standardize'))
    per_sample = F.mse_loss(std(s), std(t)) / 2
    assert_differs(per_sample, got)
    # invariant to an affine map of either side (up to the 1e-6 added to the std)
    torch.testing.assert_close(build_distance('pkd')(s * 3.0 + 1.0, t), got, rtol=1e-4, atol=0)


def test_pkd_gradcheck_and_shape_errors():
    s = rand((2, 3, 4, 4), 0).requires_grad_(True)
    t = rand((2, 3, 4, 4), 1).requires_grad_(True)
    pkd = build_distance('pkd')
    assert torch.autograd.gradcheck(lambda a, b: pkd(a, b), (s, t), eps=1e-6, atol=1e-5)
    with pytest.raises(ValueError, match='equal shapes'):
        pkd(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match='rank'):
        pkd(torch.randn(2, 3), torch.randn(2, 3))
    assert math.isclose(float(pkd(s, s)), 0.0, abs_tol=1e-12)
