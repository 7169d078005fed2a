"""The classic methods added as term compositions: RKD, PKT, NST, VID, ReviewKD, CRD.

Each loss is pinned against a reference written here after the paper and its official code
(RepDistiller for RKD / PKT / NST / VID / CRD, mdistiller for ReviewKD), on fixed inputs,
in a setting where swapping two parts of the formula changes the value; then every new
config builds its Distiller (random teacher) and takes one training step.
"""
import copy
import glob
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from kdzoo.kd import DistillTerm, build_distance
from kdzoo.models.connectors import ABFConnector, VIDRegressor
from kdzoo.models.teachers import set_config_dir
from kdzoo.registry import MODELS
from kdzoo.utils import register_all_modules

register_all_modules()

D64 = torch.float64
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def rand(shape, seed, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=D64) * scale + shift


def assert_differs(a, b, rel=1e-3):
    a, b = float(torch.as_tensor(a).detach()), float(torch.as_tensor(b).detach())
    assert abs(a - b) > rel * max(abs(a), abs(b), 1e-12), (a, b)


# --- RKD (Park et al., CVPR 2019), RepDistiller's RKDLoss ---------------------------------


def ref_pdist(e, eps=1e-12):
    e_square = e.pow(2).sum(dim=1)
    prod = e @ e.t()
    res = (e_square.unsqueeze(1) + e_square.unsqueeze(0) - 2 * prod).clamp(min=eps).sqrt()
    res = res.clone()
    res[range(len(e)), range(len(e))] = 0
    return res


def ref_rkd(f_s, f_t, w_d, w_a):
    student, teacher = f_s.view(f_s.shape[0], -1), f_t.view(f_t.shape[0], -1)
    t_d = ref_pdist(teacher)
    t_d = t_d / t_d[t_d > 0].mean()
    d = ref_pdist(student)
    d = d / d[d > 0].mean()
    loss_d = F.smooth_l1_loss(d, t_d)
    td = teacher.unsqueeze(0) - teacher.unsqueeze(1)
    t_angle = torch.bmm(F.normalize(td, p=2, dim=2),
                        F.normalize(td, p=2, dim=2).transpose(1, 2)).view(-1)
    sd = student.unsqueeze(0) - student.unsqueeze(1)
    s_angle = torch.bmm(F.normalize(sd, p=2, dim=2),
                        F.normalize(sd, p=2, dim=2).transpose(1, 2)).view(-1)
    loss_a = F.smooth_l1_loss(s_angle, t_angle)
    return w_d * loss_d + w_a * loss_a


def test_rkd_matches_repdistiller():
    s, t = rand((6, 5), 0), rand((6, 7), 1, 3.0)  # the widths may differ
    dist_term = DistillTerm(transforms=['rkd_distance'], distance='smooth_l1', weight=25.0)
    angle_term = DistillTerm(transforms=['rkd_angle'], distance='smooth_l1', weight=50.0)
    got = dist_term(s, t) + angle_term(s, t)
    torch.testing.assert_close(got, ref_rkd(s, t, 25.0, 50.0))
    # the distance weight and the angle weight are not interchangeable
    assert_differs(got, ref_rkd(s, t, 50.0, 25.0))
    # the distances are normalised by their mean; without it the loss differs
    raw = F.smooth_l1_loss(ref_pdist(s), ref_pdist(t))
    assert_differs(dist_term(s, t), 25.0 * raw)


# --- PKT (Passalis & Tefas, ECCV 2018), RepDistiller's cosine_similarity_loss --------------


def ref_pkt(output_net, target_net, eps=1e-7):
    output_net = output_net / (torch.sqrt(torch.sum(output_net**2, dim=1, keepdim=True)) + eps)
    target_net = target_net / (torch.sqrt(torch.sum(target_net**2, dim=1, keepdim=True)) + eps)
    model_similarity = (output_net @ output_net.t() + 1.0) / 2.0
    target_similarity = (target_net @ target_net.t() + 1.0) / 2.0
    model_similarity = model_similarity / model_similarity.sum(dim=1, keepdim=True)
    target_similarity = target_similarity / target_similarity.sum(dim=1, keepdim=True)
    return torch.mean(target_similarity * torch.log(
        (target_similarity + eps) / (model_similarity + eps)))


def test_pkt_matches_repdistiller():
    s, t = rand((5, 8), 2, 1.0, 0.5), rand((5, 8), 3, 2.0)
    got = DistillTerm(distance='pkt', weight=30000.0)(s, t)
    torch.testing.assert_close(got, 30000.0 * ref_pkt(s, t))
    assert_differs(got, 30000.0 * ref_pkt(t, s))  # KL(teacher || student), not the reverse
    # the mean runs over all N^2 entries, not a batch mean of row sums
    assert_differs(got, 30000.0 * 5 * ref_pkt(s, t) * 5 / 4)


# --- NST (Huang & Wang 2017), RepDistiller's NSTLoss ---------------------------------------


def ref_poly_kernel(a, b):
    return (a.unsqueeze(1) * b.unsqueeze(2)).sum(-1).pow(2)


def ref_nst(f_s, f_t):
    f_s = F.normalize(f_s.view(f_s.shape[0], f_s.shape[1], -1), dim=2)
    f_t = F.normalize(f_t.view(f_t.shape[0], f_t.shape[1], -1), dim=2)
    return (ref_poly_kernel(f_t, f_t).mean() + ref_poly_kernel(f_s, f_s).mean()
            - 2 * ref_poly_kernel(f_s, f_t).mean())


def test_nst_matches_repdistiller():
    s, t = rand((3, 4, 5, 6), 4), rand((3, 4, 5, 6), 5, 1.0, 0.7)  # C = 4, H = 5 != W = 6
    term = DistillTerm(transforms=['norm_HW'], distance='mmd', weight=50.0)
    got = term(s, t)
    torch.testing.assert_close(got, 50.0 * ref_nst(s, t))
    # the kernel is quadratic; a linear kernel, or normalising over C, differs
    assert_differs(DistillTerm(transforms=['norm_HW'], distance=dict(type='mmd', degree=1.0),
                               weight=50.0)(s, t), got)
    assert_differs(DistillTerm(transforms=['norm_C'], distance='mmd', weight=50.0)(s, t), got)


# --- VID (Ahn et al., CVPR 2019), RepDistiller's VIDLoss ----------------------------------


def ref_vid(regressor, log_scale, inp, target, eps=1e-5):
    s_h, t_h = inp.shape[2], target.shape[2]
    if s_h > t_h:
        inp = F.adaptive_avg_pool2d(inp, (t_h, t_h))
    pred_mean = regressor(inp)
    pred_var = (torch.log(1.0 + torch.exp(log_scale)) + eps).view(1, -1, 1, 1)
    return torch.mean(0.5 * ((pred_mean - target)**2 / pred_var + torch.log(pred_var)))


def test_vid_matches_repdistiller():
    torch.manual_seed(0)
    connector = VIDRegressor(in_channels=3, out_channels=5, mid_channels=4).double()
    term = DistillTerm(distance=dict(type='vid', num_channels=5, init_var=5.0),
                       connector=connector, weight=1.0).double()
    init = math.log(math.exp(5.0 - 1e-5) - 1.0)
    torch.testing.assert_close(term.distance.log_scale.detach(),
                               torch.full((5, ), init, dtype=D64))
    with torch.no_grad():  # per-channel variances that differ
        term.distance.log_scale.copy_(torch.tensor([0.1, 1.0, 2.0, -0.5, 3.0]))
    s, t = rand((2, 3, 4, 4), 6), rand((2, 5, 2, 2), 7, 2.0)  # the student map is pooled
    got = term(s, t)
    log_scale = term.distance.log_scale.detach()
    torch.testing.assert_close(got, ref_vid(connector.regressor, log_scale, s, t))
    assert_differs(got, ref_vid(connector.regressor, log_scale.flip(0), s, t))
    got.backward()
    assert term.distance.log_scale.grad is not None  # the variance is learned
    assert all(p.grad is not None for p in connector.parameters())


# --- ReviewKD (Chen et al., CVPR 2021), mdistiller's ABF chain + hcl_loss ------------------


def ref_hcl(fstudent, fteacher):
    loss_all = 0.0
    for fs, ft in zip(fstudent, fteacher):
        h = fs.shape[2]
        loss = F.mse_loss(fs, ft, reduction='mean')
        cnt, tot = 1.0, 1.0
        for level in [4, 2, 1]:
            if level >= h:
                continue
            cnt /= 2.0
            loss += F.mse_loss(F.adaptive_avg_pool2d(fs, (level, level)),
                               F.adaptive_avg_pool2d(ft, (level, level)), reduction='mean') * cnt
            tot += cnt
        loss_all = loss_all + loss / tot
    return loss_all


def ref_abf(abf, x, y=None, shape=None, out_shape=None):
    """mdistiller's ABF.forward with the weights of a kdzoo ABFConnector."""
    n, _, h, w = x.shape
    x = abf.conv1(x)
    if abf.att_conv is not None:
        y = F.interpolate(y, (shape, shape), mode='nearest')
        z = abf.att_conv(torch.cat([x, y], dim=1))
        x = x * z[:, 0].view(n, 1, h, w) + y * z[:, 1].view(n, 1, h, w)
    if x.shape[-1] != out_shape:
        x = F.interpolate(x, (out_shape, out_shape), mode='nearest')
    return abf.conv2(x), x


def test_reviewkd_matches_mdistiller():
    torch.manual_seed(0)
    # student: pooled (N, 8), stage maps (N, 8, 4, 4) and (N, 4, 8, 8); teacher: 6 / 6 / 3
    specs = [(8, 6), (8, 6), (4, 3)]
    abfs = [ABFConnector(in_channels=c_in, out_channels=c_out, mid_channels=5, level=i,
                         chain='test_review').double() for i, (c_in, c_out) in enumerate(specs)]
    terms = [DistillTerm(distance=dict(type='hcl', warmup=20), weight=5.0, connector=abf,
                         name=f'review{i}').double() for i, abf in enumerate(abfs)]
    for term in terms:
        term.train()
    students = [rand((2, 8), 8), rand((2, 8, 4, 4), 9), rand((2, 4, 8, 8), 10)]
    teachers = [rand((2, 6), 11), rand((2, 6, 4, 4), 12), rand((2, 3, 8, 8), 13)]
    epoch0 = 4
    got = sum(term(s, t, epoch=epoch0) for term, s, t in zip(terms, students, teachers))
    # mdistiller: the deepest level first, each fused with the previous level's residual
    x = [students[0][:, :, None, None]] + students[1:]
    results = []
    out, res = ref_abf(abfs[0], x[0], out_shape=1)
    results.append(out)
    for feat, abf, shape in zip(x[1:], abfs[1:], (4, 8)):
        out, res = ref_abf(abf, feat, res, shape, shape)
        results.insert(0, out)
    feats_t = [teachers[2], teachers[1], teachers[0][:, :, None, None]]
    ref = 5.0 * min((epoch0 + 1) / 20, 1.0) * ref_hcl(results, feats_t)
    torch.testing.assert_close(got, ref)
    # the pyramid weights halve per level: equal weights give another value
    flat = sum(F.mse_loss(r, f) for r, f in zip(results, feats_t))
    assert_differs(got, 5.0 * (epoch0 + 1) / 20 * flat)
    # without the fusion (each level alone) the outputs change
    alone, _ = ref_abf(abfs[0], x[0], out_shape=1)
    torch.testing.assert_close(alone.flatten(1), abfs[0](students[0], teachers[0].shape))
    assert not torch.allclose(abfs[1].conv2(abfs[1].conv1(x[1])), results[1])


def test_abf_chain_is_checked():
    level0 = ABFConnector(in_channels=4, out_channels=4, mid_channels=3, level=0,  # noqa: F841
                          chain='checked')
    with pytest.raises(ValueError, match='level 1 connector of its chain'):
        ABFConnector(in_channels=4, out_channels=4, mid_channels=3, level=2, chain='checked')
    with pytest.raises(ValueError, match='mid_channels'):
        ABFConnector(in_channels=4, out_channels=4, mid_channels=6, level=1, chain='checked')
    first = ABFConnector(in_channels=4, out_channels=4, mid_channels=3, level=0, chain='order')
    second = ABFConnector(in_channels=4, out_channels=4, mid_channels=3, level=1, chain='order')
    with pytest.raises(RuntimeError, match='level 0 has not run'):
        second(torch.randn(2, 4, 4, 4), (2, 4, 4, 4))
    first(torch.randn(2, 4), (2, 4))
    assert second(torch.randn(2, 4, 4, 4), (2, 4, 4, 4)).shape == (2, 4, 4, 4)
    # a copy links to the copied level and holds no activation of the step
    pair = copy.deepcopy(torch.nn.ModuleList([first, second]))
    assert pair[1].previous is pair[0] and pair[0].residual is None
    assert not any('previous' in k for k in second.state_dict())


# --- CRD (Tian et al., ICLR 2020), RepDistiller's ContrastMemory + ContrastLoss ------------


class RefContrastMemory:
    """RepDistiller's ContrastMemory.forward on given memories and contrast indices."""

    def __init__(self, memory_v1, memory_v2, T, momentum):  # noqa: N803
        self.memory_v1, self.memory_v2 = memory_v1.clone(), memory_v2.clone()
        self.T, self.momentum = T, momentum
        self.Z_v1 = self.Z_v2 = -1.0

    def forward(self, v1, v2, y, idx):
        batch_size, k1 = idx.shape
        output_size, input_size = self.memory_v1.shape
        weight_v1 = torch.index_select(self.memory_v1, 0, idx.view(-1)).detach()
        out_v2 = torch.exp(torch.bmm(weight_v1.view(batch_size, k1, input_size),
                                     v2.view(batch_size, input_size, 1)) / self.T)
        weight_v2 = torch.index_select(self.memory_v2, 0, idx.view(-1)).detach()
        out_v1 = torch.exp(torch.bmm(weight_v2.view(batch_size, k1, input_size),
                                     v1.view(batch_size, input_size, 1)) / self.T)
        if self.Z_v1 < 0:
            self.Z_v1 = (out_v1.mean() * output_size).item()
        if self.Z_v2 < 0:
            self.Z_v2 = (out_v2.mean() * output_size).item()
        out_v1, out_v2 = out_v1 / self.Z_v1, out_v2 / self.Z_v2
        with torch.no_grad():
            for memory, v in ((self.memory_v1, v1), (self.memory_v2, v2)):
                pos = torch.index_select(memory, 0, y.view(-1)) * self.momentum
                pos = pos + v * (1 - self.momentum)
                memory.index_copy_(0, y, pos / pos.pow(2).sum(1, keepdim=True).pow(0.5))
        return out_v1, out_v2


def ref_contrast_loss(x, n_data, eps=1e-7):
    bsz, m = x.shape[0], x.size(1) - 1
    pn = 1 / float(n_data)
    p_pos = x.select(1, 0)
    log_d1 = torch.div(p_pos, p_pos.add(m * pn + eps)).log_()
    p_neg = x.narrow(1, 1, m)
    log_d0 = torch.div(p_neg.clone().fill_(m * pn), p_neg.add(m * pn + eps)).log_()
    return -(log_d1.sum(0) + log_d0.view(-1, 1).sum(0)) / bsz


def ref_embed(linear, x):
    x = linear(x.view(x.shape[0], -1))
    return x.div(x.pow(2).sum(1, keepdim=True).pow(0.5))


def test_crd_matches_repdistiller():
    torch.manual_seed(0)
    n_data, k, momentum, tau = 12, 4, 0.3, 0.2
    crd = build_distance(dict(type='crd', in_dim=6, feat_dim=3, num_data=n_data, nce_k=k,
                              nce_t=tau, momentum=momentum)).double()
    ref = RefContrastMemory(crd.memory_s, crd.memory_t, tau, momentum)
    s, t = rand((3, 6), 14), rand((3, 6), 15, 2.0)
    y = torch.tensor([2, 7, 11])
    idx = torch.tensor([[2, 0, 5, 9, 3], [7, 1, 1, 4, 10], [11, 6, 8, 2, 0]])
    for step in range(2):  # Z is set on the first step and reused on the second
        got = crd(s, t, sample_idx=y, contrast_idx=idx)
        v1, v2 = ref_embed(crd.embed_s, s), ref_embed(crd.embed_t, t)
        out_s, out_t = ref.forward(v1, v2, y, idx)
        want = ref_contrast_loss(out_s, n_data) + ref_contrast_loss(out_t, n_data)
        torch.testing.assert_close(got, want.squeeze())
        torch.testing.assert_close(crd.memory_s, ref.memory_v1)
        torch.testing.assert_close(crd.memory_t, ref.memory_v2)
        s, t = s.flip(0), t + 0.5
    assert float(crd.z_s) == pytest.approx(ref.Z_v1) and float(crd.z_t) == pytest.approx(ref.Z_v2)
    # the student embedding scores against the teacher memory: the swapped pairing differs
    swapped = RefContrastMemory(crd.memory_t, crd.memory_s, tau, momentum)
    v1, v2 = ref_embed(crd.embed_s, s), ref_embed(crd.embed_t, t)
    crd.eval()  # no memory update
    got = crd(s, t, sample_idx=y, contrast_idx=idx)
    swapped.Z_v1, swapped.Z_v2 = float(crd.z_s), float(crd.z_t)
    out_s, out_t = swapped.forward(v1, v2, y, idx)
    assert_differs(got, ref_contrast_loss(out_s, n_data) + ref_contrast_loss(out_t, n_data))


def test_crd_draws_other_class_negatives_and_needs_indices():
    torch.manual_seed(0)
    crd = build_distance(dict(type='crd', in_dim=4, feat_dim=3, num_data=10, nce_k=64))
    s, t = torch.randn(4, 4), torch.randn(4, 4)
    labels = torch.tensor([0, 1, 0, 1])
    rows = torch.tensor([0, 1, 2, 3])
    crd(s, t, sample_idx=rows, gt_labels=labels)  # learns the labels of rows 0-3
    assert crd.row_labels[:4].tolist() == [0, 1, 0, 1] and (crd.row_labels[4:] == -1).all()
    idx = crd._contrast_idx(rows, dict(gt_labels=labels), s.device)
    assert idx[:, 0].tolist() == rows.tolist()
    negative_labels = crd.row_labels[idx[:, 1:]]
    assert not (negative_labels == labels.view(-1, 1)).any()
    with pytest.raises(ValueError, match="meta_keys=\\('sample_idx',\\)"):
        crd(s, t, gt_labels=labels)
    with pytest.raises(ValueError, match='num_data=10'):
        crd(s, t, sample_idx=torch.tensor([0, 1, 2, 10]))
    with pytest.raises(ValueError, match="valid: other_class, uniform"):
        build_distance(dict(type='crd', negatives='same'))
    # without a memory, the batch is the contrast set (symmetric InfoNCE)
    free = build_distance(dict(type='crd', nce_t=0.5))
    logits = F.normalize(s) @ F.normalize(t).t() / 0.5
    target = torch.arange(4)
    torch.testing.assert_close(free(s, t), F.cross_entropy(logits, target)
                               + F.cross_entropy(logits.t(), target))


# --- every new config builds and trains one step ------------------------------------------

CIFAR_CONFIGS = sorted(
    p for folder in ('crd', 'reviewkd', 'rkd', 'pkt', 'sp', 'vid', 'nst', 'ls')
    for p in glob.glob(osp.join(ROOT, 'configs', folder, '*.py')))
IMAGENET_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'imagenet', '*_imagenet.py')))


def build_from_config(path):
    cfg = set_config_dir(Config.fromfile(path))
    model_cfg = cfg.model.to_dict()
    model_cfg['teacher_checkpoint'] = None  # random teacher: no weights are needed here
    return MODELS.build(model_cfg), cfg


def train_step(model, batch):
    model.train()
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    for name, value in losses.items():
        assert torch.isfinite(value).all(), (name, value)
    sum(losses.values()).backward()
    return losses


def check_gradients(model):
    assert all(p.grad is None for p in model.teacher.parameters())
    student = [p.grad for p in model.student.parameters()]
    assert all(g is not None for g in student) and any(g.abs().sum() > 0 for g in student)
    for name, p in model.named_parameters():
        assert name.startswith(('student.', 'terms.')), name
        if name.startswith('terms.'):  # connectors and learned parts of distances
            assert p.grad is not None, name


def cifar_batch(n=4, with_index=False):
    g = torch.Generator().manual_seed(0)
    samples = dict(gt_label=torch.randint(0, 100, (n, ), generator=g))
    if with_index:
        samples['sample_idx'] = torch.tensor([3, 17, 49999, 1024])[:n]
    return dict(inputs=torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                data_samples=samples)


def test_at_least_twelve_classic_cifar_configs():
    folders = ('kd', 'fitnets', 'at', 'dkd', 'dist', 'crd', 'reviewkd', 'rkd', 'pkt', 'sp',
               'vid', 'nst', 'ls')
    configs = [p for f in folders for p in glob.glob(osp.join(ROOT, 'configs', f, '*.py'))]
    assert len(configs) >= 12 and len(CIFAR_CONFIGS) == 9


@pytest.mark.parametrize('path', [p for p in CIFAR_CONFIGS if '/crd/' not in p],
                         ids=lambda p: osp.basename(p)[:-3])
def test_cifar_config_trains_one_step(path):
    """CRD needs the batch's sample indices: see test_crd_config_trains_one_step."""
    torch.manual_seed(0)
    model, _ = build_from_config(path)
    losses = train_step(model, cifar_batch())
    assert any(k.startswith('loss_') and k != 'loss_cls' for k in losses)
    check_gradients(model)


def test_crd_config_trains_one_step():
    path = osp.join(ROOT, 'configs', 'crd', 'crd_resnet32x4_resnet8x4_cifar100.py')
    torch.manual_seed(0)
    model, cfg = build_from_config(path)
    pack = cfg.train_dataloader.dataset.pipeline[-1]
    assert pack.type == 'PackClsInputs' and tuple(pack.meta_keys) == ('sample_idx', )
    losses = train_step(model, cifar_batch(with_index=True))
    assert set(losses) == {'loss_cls', 'loss_crd'}
    check_gradients(model)
    crd = model.terms[0].distance
    assert crd.memory_s.shape == (50000, 128) and float(crd.z_s) > 0
    assert crd.row_labels[torch.tensor([3, 17, 49999, 1024])].ge(0).all()
    # a batch without the indices (PackClsInputs without meta_keys): the error says so
    model, _ = build_from_config(path)
    with pytest.raises(ValueError, match='sample_idx'):
        train_step(model, cifar_batch(with_index=False))


def test_pack_cls_inputs_carries_the_sample_index():
    from mmengine.dataset import default_collate

    from kdzoo.datasets.transforms import PackClsInputs
    pack = PackClsInputs(meta_keys=('sample_idx', ))
    items = [pack(dict(img=torch.zeros(32, 32, 3, dtype=torch.uint8).numpy(), gt_label=i,
                       sample_idx=10 + i)) for i in range(3)]
    batch = default_collate(items)
    assert batch['data_samples']['sample_idx'].tolist() == [10, 11, 12]


@pytest.mark.parametrize('path', [p for p in IMAGENET_CONFIGS if 'resnet34' in p],
                         ids=lambda p: osp.basename(p)[:-3])
def test_imagenet_config_trains_one_step(path):
    torch.manual_seed(0)
    model, cfg = build_from_config(path)
    assert cfg.train_dataloader.dataset.type == 'ImageFolder'
    g = torch.Generator().manual_seed(0)
    batch = dict(inputs=torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=g),
                 data_samples=dict(gt_label=torch.tensor([5, 999])))
    train_step(model, batch)
    check_gradients(model)


FMNIST_HANDMADE = sorted(glob.glob(osp.join(ROOT, 'configs', 'fashion_mnist', 'handmade',
                                            '[!_]*.py')))


@pytest.mark.parametrize('path', FMNIST_HANDMADE, ids=lambda p: osp.basename(p)[:-3])
def test_fmnist_handmade_config_trains_one_step(path):
    """The hand-made rows of the searched-vs-hand-made table: the quick-start student and
    teacher with each paper's terms; every term gives a finite loss and a gradient."""
    torch.manual_seed(0)
    model, cfg = build_from_config(path)
    assert cfg.model.student.backbone == dict(type='resnet8', num_classes=10, in_channels=1,
                                              width_mult=0.5)
    g = torch.Generator().manual_seed(0)
    batch = dict(inputs=torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8, generator=g),
                 data_samples=dict(gt_label=torch.randint(0, 10, (4, ), generator=g)))
    losses = train_step(model, batch)
    terms = [k for k in losses if k.startswith('loss_') and k != 'loss_cls']
    assert len(terms) == len(cfg.model.distill_terms) >= 1
    assert all(float(losses[k]) > 0 for k in terms)
    check_gradients(model)


def test_the_handmade_table_has_its_six_rows():
    assert [osp.basename(p) for p in FMNIST_HANDMADE] == [
        'at_fmnist.py', 'dist_fmnist.py', 'dkd_fmnist.py', 'fitnets_fmnist.py',
        'kd_ls_fmnist.py']  # + configs/fashion_mnist/kd_fmnist.py: KD
