"""Knowledge transforms: formulas against independent references, ranks, state, gradients."""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdzoo.kd import (DistillTerm, KnowledgeTransform, build_distance, build_transform,
                      check_chain, registered)
from kdzoo.registry import KD_TRANSFORMS

ROOT = Path(__file__).resolve().parents[2]


def all_transform_names():
    return sorted(registered(KD_TRANSFORMS))


def make_input(shape, seed=0, dtype=torch.float64):
    """Values bounded away from 0 and pairwise distinct (safe for abs / sqrt / min / max)."""
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(shape, generator=g, dtype=dtype)
    sign = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0).to(dtype)
    return sign * (0.2 + r)


def test_library_size_and_metadata():
    names = all_transform_names()
    assert len(names) >= 40
    for name in names:
        cls = KD_TRANSFORMS.get(name)
        assert issubclass(cls, KnowledgeTransform)
        meta = cls.metadata()
        assert meta['formula'].strip(), name
        assert meta['family'] in ('global', 'intra', 'inter', 'alignment'), name
        assert meta['ranks'] and all(r in (2, 3, 4) for r in meta['ranks']), name


def test_required_names_registered():
    required = """no bn norm_C norm_HW norm_N softmax_C softmax_HW softmax_N logsoftmax_C
    logsoftmax_HW logsoftmax_N minmax tanh sigmoid scale abs pow sqrt log mask dropout satt
    catt natt patch1 patch2 patch4 channel_dist pool1 pool2 pool4 pyramid gram_C gram_N
    sample_sim svd channel_select interp sn sm pts""".split()
    missing = set(required) - set(all_transform_names())
    assert not missing


def test_families_filter():
    inter = registered(KD_TRANSFORMS, family='inter')
    assert {'pool1', 'pool2', 'pool4', 'pyramid', 'gram_C', 'gram_N', 'sample_sim'} <= set(inter)
    assert {'patch1', 'patch2', 'patch4', 'channel_dist'} <= set(
        registered(KD_TRANSFORMS, family='intra'))
    assert {'svd', 'sn', 'sm', 'pts'} <= set(registered(KD_TRANSFORMS, family='alignment'))
    assert set(registered(KD_TRANSFORMS, stochastic=True)) == {'mask', 'dropout'}


# --- builders and rank checks ----------------------------------------------------------


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError) as err:
        build_transform('satention')
    msg = str(err.value)
    assert 'Valid names' in msg and 'satt' in msg and 'gram_C' in msg


def test_wrong_rank_names_the_class():
    with pytest.raises(ValueError, match='SpatialAttention'):
        build_transform('satt')(torch.randn(4, 8))
    with pytest.raises(ValueError, match='LocalPatch2'):
        build_transform('patch2')(torch.randn(4, 8))
    with pytest.raises(ValueError, match='NormHW'):  # a variant keeps its class name
        build_transform('norm_HW')(torch.randn(4, 8))


def test_check_chain_rejects_invalid_chain():
    satt, pool = build_transform('satt'), build_transform('pool2')
    with pytest.raises(ValueError, match='LocalPatch'):
        check_chain([satt, build_transform('patch1')], build_distance('l2'), 4)
    with pytest.raises(ValueError):
        check_chain([pool], build_distance('at'), 2)
    with pytest.raises(ValueError, match='AttentionTransferDistance'):
        check_chain([satt], build_distance('at'), 4)
    check_chain([pool, satt], build_distance('l2'), 4)  # valid: no error
    check_chain([build_transform('gram_C')], build_distance('kl'), 4)


def test_output_rank_matches_actual_output():
    shapes = {2: (4, 6), 3: (4, 6, 5), 4: (4, 6, 4, 4)}
    for name in all_transform_names():
        for rank in KD_TRANSFORMS.get(name).ranks:
            tr = build_transform(name)
            out = tr(torch.randn(shapes[rank]))
            assert out.dim() == tr.output_rank(rank), (name, rank)


# --- global ops --------------------------------------------------------------------------


def test_bn_matches_explicit_standardisation():
    x = make_input((5, 3, 2, 2))
    out = build_transform(dict(type='bn', eps=1e-5))(x)
    for c in range(3):
        v = x[:, c].reshape(-1)
        mean = v.sum() / v.numel()
        var = ((v - mean)**2).sum() / v.numel()
        torch.testing.assert_close(out[:, c].reshape(-1), (v - mean) / math.sqrt(var + 1e-5))


def test_norms_and_softmaxes_along_their_dims():
    x = make_input((3, 4, 2, 5))
    assert torch.allclose(build_transform('norm_C')(x).pow(2).sum(1), torch.ones(3, 2, 5,
                                                                                  dtype=x.dtype))
    assert torch.allclose(build_transform('norm_N')(x).pow(2).sum(0), torch.ones(4, 2, 5,
                                                                                  dtype=x.dtype))
    assert torch.allclose(build_transform('norm_HW')(x).pow(2).sum((2, 3)),
                          torch.ones(3, 4, dtype=x.dtype))
    sm_hw = build_transform('softmax_HW')(x)
    assert torch.allclose(sm_hw.sum((2, 3)), torch.ones(3, 4, dtype=x.dtype))
    e = x[1, 2].exp()
    torch.testing.assert_close(sm_hw[1, 2], e / e.sum())
    torch.testing.assert_close(build_transform('logsoftmax_N')(x).exp().sum(0),
                               torch.ones(4, 2, 5, dtype=x.dtype))
    torch.testing.assert_close(build_transform('softmax_C')(x), x.exp() / x.exp().sum(1, True))


def test_elementwise_formulas():
    x = torch.tensor([[-8.0, -1.0, 0.0, 0.25, 4.0]], dtype=torch.float64)
    pts = build_transform(dict(type='pts', T=2.0, n=2.0))(x)
    expected = torch.tensor([[-2.0, -math.sqrt(0.5), 0.0, math.sqrt(0.125), math.sqrt(2.0)]],
                            dtype=torch.float64)
    torch.testing.assert_close(pts, expected)
    pts3 = build_transform(dict(type='pts', T=1.0, n=3.0))(x)
    torch.testing.assert_close(pts3[0, 0], torch.tensor(-2.0, dtype=torch.float64))
    torch.testing.assert_close(build_transform('log')(x)[0, 0],
                               torch.tensor(-math.log(9.0), dtype=torch.float64))
    sq = build_transform(dict(type='sqrt', eps=0.0))(x)
    torch.testing.assert_close(sq[0, 4], torch.tensor(2.0, dtype=torch.float64))
    torch.testing.assert_close(sq[0, 0], torch.tensor(-math.sqrt(8.0), dtype=torch.float64))
    torch.testing.assert_close(build_transform(dict(type='pow', p=3))(x)[0, 0],
                               torch.tensor(-512.0, dtype=torch.float64))
    torch.testing.assert_close(build_transform(dict(type='scale', factor=0.5))(x), x * 0.5)
    mm = build_transform('minmax')(x)
    torch.testing.assert_close(mm, (x + 8.0) / (12.0 + 1e-8))
    z = build_transform('standardize')(x)  # unbiased std, as in LS-KD's code
    assert abs(float(z.mean())) < 1e-9 and abs(float(z.std()) - 1) < 1e-6
    z_b = build_transform(dict(type='standardize', unbiased=False, t=2.0))(x)
    assert abs(float(z_b.std(unbiased=False)) - 0.5) < 1e-6


def test_pts_gradient_at_zero_is_finite():
    x = torch.tensor([0.0, 1.0, -2.0], requires_grad=True)
    build_transform('pts')(x.view(1, 3)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[0] == 0


# --- masking -------------------------------------------------------------------------------


@pytest.mark.parametrize('name', ['mask', 'dropout'])
def test_random_masks_shared_by_student_and_teacher(name):
    torch.manual_seed(0)
    tr = build_transform(dict(type=name, ratio=0.5))
    ones = torch.ones(6, 4, 5, 5)
    m_student, m_teacher = tr.pair(ones, ones * 3.0)
    torch.testing.assert_close(m_teacher, 3.0 * m_student)  # one mask for both tensors
    assert 0 < int((m_student == 0).sum()) < m_student.numel()
    if name == 'mask':  # one draw per location, shared by channels, not rescaled
        assert torch.equal(m_student, m_student[:, :1].expand_as(m_student))
        assert set(m_student.unique().tolist()) <= {0.0, 1.0}
    else:
        assert set(m_student.unique().tolist()) <= {0.0, 2.0}
    m_next, _ = tr.pair(ones, ones)  # next step: a fresh draw
    assert not torch.equal(m_next, m_student)
    # a single tensor draws its own mask every call (no pending state)
    torch.manual_seed(3)
    single = [tr(ones) for _ in range(2)]
    assert not torch.equal(single[0], single[1])
    torch.manual_seed(3)
    assert torch.equal(tr.pair(ones, ones)[0], single[0])
    tr.eval()
    x = torch.randn(2, 4, 3, 3)
    assert torch.equal(tr(x), x)
    assert all(torch.equal(a, b) for a, b in zip(tr.pair(x, 2 * x), (x, 2 * x)))


def test_mask_through_distill_term_masks_identically():
    torch.manual_seed(1)
    term = DistillTerm(distance='l2', transforms=['mask'])
    x = torch.randn(4, 3, 6, 6)
    assert float(term(x, x.clone())) == 0.0  # identical inputs, identical masks
    y = torch.randn(4, 3, 6, 6)
    tr = term.transforms[0]
    torch.manual_seed(2)
    loss = term(x, y)
    torch.manual_seed(2)
    mask = tr.sample_mask(x)
    torch.testing.assert_close(loss, ((x - y) * mask).pow(2).mean())


# --- attention ---------------------------------------------------------------------------


def test_satt_matches_attention_transfer_formula():
    x = make_input((3, 5, 4, 4))
    out = build_transform('satt')(x)
    assert out.shape == (3, 16)
    for n in range(3):
        am = torch.zeros(16, dtype=x.dtype)
        for c in range(5):
            am += x[n, c].reshape(-1)**2 / 5
        torch.testing.assert_close(out[n], am / am.pow(2).sum().sqrt())


def test_catt_and_natt():
    x = make_input((3, 5, 2, 3))
    out = build_transform('catt')(x)
    ref = (x**2).mean((2, 3))
    torch.testing.assert_close(out, ref / ref.norm(dim=1, keepdim=True))
    natt = build_transform(dict(type='natt', t=0.5))(x)
    energy = torch.tensor([(x[n]**2).mean() for n in range(3)], dtype=x.dtype)
    w = 3 * torch.exp(energy / 0.5) / torch.exp(energy / 0.5).sum()
    torch.testing.assert_close(natt, x * w.view(3, 1, 1, 1))


# --- intra / inter-spatial ---------------------------------------------------------------


@pytest.mark.parametrize('k', [1, 2, 4])
def test_local_patches_are_distributions(k):
    x = make_input((2, 3, 8, 8))
    out = build_transform(f'patch{k}')(x)
    assert out.shape == x.shape
    s = 8 // k
    patch = x[1, 2, s:2 * s, 0:s] if k > 1 else x[1, 2]
    got = out[1, 2, s:2 * s, 0:s] if k > 1 else out[1, 2]
    torch.testing.assert_close(got, patch.exp() / patch.exp().sum())
    sums = out.reshape(2, 3, k, s, k, s).sum((3, 5))
    torch.testing.assert_close(sums, torch.ones_like(sums))


def test_local_patches_uneven_size():
    x = make_input((1, 2, 5, 7))
    out = build_transform('patch2')(x)
    top_left = x[0, 1, :3, :4]  # tensor_split(5, 2) -> 3 + 2; (7, 2) -> 4 + 3
    torch.testing.assert_close(out[0, 1, :3, :4], top_left.exp() / top_left.exp().sum())
    assert torch.allclose(out.sum((2, 3)), torch.full((1, 2), 4.0, dtype=x.dtype))


def test_patch1_equals_softmax_hw():
    x = make_input((2, 3, 4, 4))
    torch.testing.assert_close(build_transform('patch1')(x), build_transform('softmax_HW')(x))


def test_channel_dist_with_kl_is_cwd():
    s, t = make_input((2, 3, 2, 2), 0), make_input((2, 3, 2, 2), 1)
    tau = 4.0
    term = DistillTerm(distance='kl', transforms=['channel_dist'], tau=tau)
    ref = 0.0
    for n in range(2):
        for c in range(3):
            ps = torch.softmax(s[n, c].reshape(-1) / tau, 0)
            pt = torch.softmax(t[n, c].reshape(-1) / tau, 0)
            ref += (pt * (pt.log() - ps.log())).sum()
    torch.testing.assert_close(term(s, t), tau**2 * ref / (2 * 3))


def test_pooling_shapes_and_pyramid():
    x = make_input((2, 3, 8, 8))
    for k in (1, 2, 4):
        assert build_transform(f'pool{k}')(x).shape == (2, 3, k, k)
    pyr = build_transform('pyramid')(x)
    assert pyr.shape == (2, 3 * 21)
    torch.testing.assert_close(pyr[:, :3], x.mean((2, 3)))
    torch.testing.assert_close(pyr[0, 3], x[0, 0, :4, :4].mean())
    torch.testing.assert_close(build_transform('gap')(x), x.mean((2, 3)))


def test_gram_matrices():
    x = make_input((2, 3, 2, 4))
    g = build_transform('gram_C')(x)
    assert g.shape == (2, 3, 3)
    torch.testing.assert_close(g, g.transpose(1, 2))
    torch.testing.assert_close(g[1, 0, 2], (x[1, 0] * x[1, 2]).sum() / 8)
    gn = build_transform('gram_N')(x)
    assert gn.shape == (2, 2)
    torch.testing.assert_close(gn[0, 1], (x[0] * x[1]).sum() / 24)
    sim = build_transform('sample_sim')(x)
    raw = torch.tensor([[(x[i] * x[j]).sum() for j in range(2)] for i in range(2)],
                       dtype=x.dtype)
    torch.testing.assert_close(sim, raw / raw.norm(dim=1, keepdim=True))


# --- KDEP alignment ----------------------------------------------------------------------


def test_svd_recovers_low_rank_subspace():
    g = torch.Generator().manual_seed(0)
    d_t, k = 10, 3
    mix = torch.randn(k, d_t, generator=g, dtype=torch.float64)
    feats = torch.randn(200, k, generator=g, dtype=torch.float64) @ mix  # rank-3 rows
    svd = build_transform(dict(type='svd', out_dim=k)).fit(feats)
    basis = svd.basis.double()
    assert basis.shape == (d_t, k) and bool(svd.fitted)
    torch.testing.assert_close(basis.t() @ basis, torch.eye(k, dtype=torch.float64),
                               atol=1e-6, rtol=0)
    q, _ = torch.linalg.qr(mix.t())  # orthonormal basis of the true subspace
    torch.testing.assert_close(basis @ basis.t(), q @ q.t(), atol=1e-5, rtol=0)
    proj = svd(feats)  # centred: (feats - mean) @ basis
    mean = feats.mean(0)
    torch.testing.assert_close(svd.mean.double(), mean)
    torch.testing.assert_close(proj @ basis.t() + mean, feats, atol=1e-4, rtol=0)
    # the first direction carries the largest energy
    energy = proj.pow(2).sum(0)
    assert energy[0] >= energy[1] >= energy[2]


def test_svd_student_teacher_semantics():
    torch.manual_seed(0)
    svd = build_transform('svd')  # out_dim: the pair's student width
    s, t = torch.randn(16, 4), torch.randn(16, 12)
    assert torch.equal(svd(t), t) and not bool(svd.fitted)  # alone, a tensor is its own target
    out_s, out_t = svd.pair(s, t)  # the first pair fits on the teacher
    assert torch.equal(out_s, s)
    assert bool(svd.fitted) and svd.basis.shape == (12, 4) and out_t.shape == (16, 4)
    assert torch.equal(svd(s), s)
    torch.testing.assert_close(svd(t), (t - svd.mean) @ svd.basis)
    torch.testing.assert_close(svd.mean, t.mean(0))
    with pytest.raises(ValueError, match='fitted for 12 -> 4'):
        svd(torch.randn(3, 7))
    maps = torch.randn(2, 12, 3, 3)
    out_maps = svd(maps)
    torch.testing.assert_close(out_maps[1, :, 2, 1], (maps[1, :, 2, 1] - svd.mean) @ svd.basis)
    uncentred = build_transform(dict(type='svd', out_dim=4, center=False)).fit(t)
    assert torch.equal(uncentred.mean, torch.zeros(12))
    torch.testing.assert_close(uncentred(t), t @ uncentred.basis)


def test_channel_select_and_interp():
    x = torch.arange(2 * 6, dtype=torch.float64).view(2, 6)
    sel = build_transform(dict(type='channel_select', out_dim=3))
    torch.testing.assert_close(sel(x), x[:, :3])
    assert torch.equal(sel(x[:, :3]), x[:, :3])  # student-sized tensors pass through
    sel_idx = build_transform(dict(type='channel_select', indices=[5, 0]))
    torch.testing.assert_close(sel_idx(x), x[:, [5, 0]])
    interp = build_transform(dict(type='interp', out_dim=3, mode='linear'))
    # 6 -> 3 with align_corners: positions 0, 2.5, 5 of the input
    torch.testing.assert_close(interp(x), torch.stack([x[:, 0], (x[:, 2] + x[:, 3]) / 2,
                                                       x[:, 5]], 1))
    nearest = build_transform(dict(type='interp', out_dim=3))  # KDEP's code: nearest
    torch.testing.assert_close(nearest(x), x[:, [0, 2, 4]])
    with pytest.raises(ValueError, match='mode'):
        build_transform(dict(type='interp', mode='cubic'))
    maps = torch.randn(2, 6, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(interp(maps)[:, :, 1, 2], interp(maps[:, :, 1, 2]))


def test_sn_and_sm_scale_channels():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(500, 4, generator=g) * torch.tensor([0.1, 1.0, 5.0, 20.0])
    sn = build_transform('sn').fit(feats).eval()
    std = sn(feats).std(0, unbiased=False)
    torch.testing.assert_close(std, torch.ones(4), atol=1e-3, rtol=0)
    sm = build_transform('sm').fit(feats, pre_alignment=feats[:, 2:] * 2).eval()
    target = float((feats[:, 3] * 2).std(unbiased=False))
    torch.testing.assert_close(sm(feats).std(0, unbiased=False), torch.full((4, ), target),
                               rtol=1e-3, atol=0)
    sm_fixed = build_transform(dict(type='sm', target_std=2.0)).fit(feats).eval()
    torch.testing.assert_close(sm_fixed(feats).std(0, unbiased=False), torch.full((4, ), 2.0),
                               rtol=1e-3, atol=0)


def test_sn_running_stats_come_from_teacher_calls():
    sn = build_transform(dict(type='sn', momentum=None))  # cumulative average
    student, teacher = torch.randn(64, 3) * 100, torch.randn(64, 3) * 2
    sn.pair(student, teacher)
    torch.testing.assert_close(sn.running_var, teacher.var(0, unbiased=False))
    out = sn(student)  # a single tensor uses the stored statistics, does not update them
    torch.testing.assert_close(out * torch.sqrt(teacher.var(0, unbiased=False) + 1e-5),
                               student)
    torch.testing.assert_close(sn.running_var, teacher.var(0, unbiased=False))
    teacher2 = torch.randn(64, 3)
    out_s, out_t = sn.pair(student, teacher2)  # the teacher is rescaled, then the update
    torch.testing.assert_close(out_t * torch.sqrt(teacher.var(0, unbiased=False) + 1e-5),
                               teacher2)
    assert torch.equal(out_s, student)  # KDEP: the student is matched as it is
    expected = (teacher.var(0, unbiased=False) + teacher2.var(0, unbiased=False)) / 2
    torch.testing.assert_close(sn.running_var, expected)
    assert int(sn.num_batches_tracked) == 2
    both = build_transform(dict(type='sn', momentum=None, apply_to='both')).fit(teacher)
    out_s, out_t = both.pair(student, teacher2)  # the same statistics for both
    torch.testing.assert_close(out_s * torch.sqrt(teacher.var(0, unbiased=False) + 1e-5),
                               student)
    with pytest.raises(ValueError, match='apply_to'):
        build_transform(dict(type='sn', apply_to='student'))


@pytest.mark.parametrize('name', ['svd', 'sn', 'sm'])
def test_stateful_buffers_saved_and_restored(name):
    torch.manual_seed(0)
    kwargs = dict(out_dim=3) if name == 'svd' else {}
    tr = build_transform(dict(type=name, **kwargs))
    assert tr.stateful
    data = torch.randn(32, 6, 2, 2)
    tr.fit(data)
    state = tr.state_dict()
    expected_keys = {'svd': {'basis', 'mean', 'fitted'},
                     'sn': {'running_var', 'num_batches_tracked'},
                     'sm': {'running_var', 'num_batches_tracked', 'target'}}[name]
    assert expected_keys <= set(state)
    fresh = build_transform(dict(type=name, **kwargs))
    fresh.load_state_dict(state)
    tr.eval()
    fresh.eval()
    x = torch.randn(5, 6, 2, 2)
    torch.testing.assert_close(fresh(x), tr(x))
    # and through a DistillTerm's state dict
    term = DistillTerm(distance='l2', transforms=[dict(type=name, **kwargs)])
    term.transforms[0].load_state_dict(state)
    term2 = DistillTerm(distance='l2', transforms=[dict(type=name, **kwargs)])
    term2.load_state_dict(term.state_dict())
    term.eval()
    term2.eval()
    y = torch.randn(5, 6, 2, 2)
    torch.testing.assert_close(term2(y, y * 2), term(y, y * 2))


# --- gradients of every transform --------------------------------------------------------

GRAD_SHAPES = {2: (3, 4), 3: (2, 3, 4), 4: (2, 3, 4, 4)}
ALIGN_KWARGS = {'svd': dict(out_dim=2), 'channel_select': dict(out_dim=2),
                'interp': dict(out_dim=2)}


def _prepared_transform(name, shape):
    tr = build_transform(dict(type=name, **ALIGN_KWARGS.get(name, {}))).double()
    if hasattr(tr, 'fit'):
        tr.fit(make_input((8, ) + tuple(shape[1:]), seed=5))
    return tr


@pytest.mark.parametrize('name', all_transform_names())
def test_gradcheck_every_transform(name):
    cls = KD_TRANSFORMS.get(name)
    for rank in cls.ranks:
        shape = GRAD_SHAPES[rank]
        x = make_input(shape, seed=rank).requires_grad_(True)
        tr = _prepared_transform(name, shape).eval()
        assert torch.autograd.gradcheck(tr, (x, ), eps=1e-6, atol=1e-5), (name, rank)
        if cls.metadata().get('stochastic'):
            tr.train()

            def fixed_mask(inp, tr=tr):
                torch.manual_seed(0)  # the same mask at every evaluation
                return tr(inp)

            assert torch.autograd.gradcheck(fixed_mask, (x, ), eps=1e-6, atol=1e-5)


# --- docs stay in sync -------------------------------------------------------------------


def test_docs_table_in_sync():
    script = ROOT / 'tools' / 'misc' / 'kd_library_table.py'
    res = subprocess.run([sys.executable, str(script), '--check'], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
