"""Structure of the KD library: variants of one class, aliases, eps, the pair API, TERM_KEYS."""
import inspect
import math

import pytest
import torch
from mmengine.registry import Registry

import kdzoo.kd as kd
from kdzoo.kd import (TERM_KEYS, DistillTerm, KnowledgeTransform, aliases, build_distance,
                      build_transform, register_variants, registered)
from kdzoo.kd.distances.divergence import KL
from kdzoo.kd.transforms.attention import Attention, SpatialAttention
from kdzoo.kd.transforms.global_ops import Elementwise, LogSoftmax, Norm, Softmax
from kdzoo.kd.transforms.inter_spatial import Pool
from kdzoo.kd.transforms.intra_spatial import LocalPatch
from kdzoo.registry import DISTANCES, KD_TRANSFORMS

D64 = torch.float64


def rand(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=D64)


# --- variants of one implementation --------------------------------------------------------

FAMILIES = {
    Norm: {'norm_C': 'NormC', 'norm_HW': 'NormHW', 'norm_N': 'NormN'},
    Softmax: {'softmax_C': 'SoftmaxC', 'softmax_HW': 'SoftmaxHW', 'softmax_N': 'SoftmaxN'},
    LogSoftmax: {'logsoftmax_C': 'LogSoftmaxC', 'logsoftmax_HW': 'LogSoftmaxHW',
                 'logsoftmax_N': 'LogSoftmaxN'},
    Pool: {'pool1': 'Pool1', 'pool2': 'Pool2', 'pool4': 'Pool4'},
    LocalPatch: {'patch1': 'LocalPatch1', 'patch2': 'LocalPatch2', 'patch4': 'LocalPatch4'},
    Attention: {'satt': 'SpatialAttention', 'catt': 'ChannelAttention'},
    Elementwise: {'tanh': 'Tanh', 'sigmoid': 'Sigmoid', 'relu': 'ReLU', 'abs': 'Abs',
                  'log': 'SignedLog'},
    KL: {'kl': 'KLDivergence', 'rkl': 'ReverseKLDivergence'},
}


@pytest.mark.parametrize('base', list(FAMILIES), ids=lambda b: b.__name__)
def test_variants_share_one_implementation(base):
    registry = DISTANCES if base is KL else KD_TRANSFORMS
    for name, cls_name in FAMILIES[base].items():
        cls = registry.get(name)
        assert cls.__bases__ == (base, ) and cls.__name__ == cls_name, name
        # a variant only sets class attributes: no code of its own
        own_code = [k for k, v in vars(cls).items() if inspect.isfunction(v)]
        assert not own_code, (name, own_code)
        assert cls.metadata()['formula'] != base.metadata()['formula'], name
    formulas = [registry.get(n).metadata()['formula'] for n in FAMILIES[base]]
    assert len(set(formulas)) == len(formulas)  # metadata per variant


def test_dim_variants_metadata_per_name():
    for prefix in ('norm', 'softmax', 'logsoftmax'):
        assert KD_TRANSFORMS.get(f'{prefix}_HW').ranks == (3, 4)
        assert KD_TRANSFORMS.get(f'{prefix}_C').ranks == (2, 3, 4)
        assert KD_TRANSFORMS.get(f'{prefix}_N').ranks == (2, 3, 4)
        assert 'over H*W' in KD_TRANSFORMS.get(f'{prefix}_HW').formula
    rank2 = registered(KD_TRANSFORMS, rank=2)
    assert 'norm_C' in rank2 and 'norm_HW' not in rank2 and 'softmax_HW' not in rank2
    assert KD_TRANSFORMS.get('softmax_HW').source.endswith('spatial distributions as in CWD')
    assert KD_TRANSFORMS.get('pool4').shapes == '(N,C,H,W) -> (N,C,4,4)'


def test_dim_variants_against_reference_formulas():
    x = rand((3, 4, 2, 5))
    flat = x.reshape(3, 4, 10)
    ref_norm = {'C': x / x.norm(dim=1, keepdim=True), 'N': x / x.norm(dim=0, keepdim=True),
                'HW': (flat / flat.norm(dim=2, keepdim=True)).view_as(x)}
    ref_softmax = {'C': x.exp() / x.exp().sum(1, keepdim=True),
                   'N': x.exp() / x.exp().sum(0, keepdim=True),
                   'HW': (flat.exp() / flat.exp().sum(2, keepdim=True)).view_as(x)}
    for dim in ('C', 'HW', 'N'):
        torch.testing.assert_close(build_transform(f'norm_{dim}')(x), ref_norm[dim])
        torch.testing.assert_close(build_transform(f'softmax_{dim}')(x), ref_softmax[dim])
        torch.testing.assert_close(build_transform(f'logsoftmax_{dim}')(x),
                                   ref_softmax[dim].log())
    # eps bounds the denominator: a tiny vector is divided by eps, not by its norm
    tiny = torch.full((2, 3), 1e-3, dtype=D64)
    torch.testing.assert_close(build_transform(dict(type='norm_C', eps=1.0))(tiny), tiny)


def test_pool_variants_against_block_means():
    x = rand((2, 3, 8, 8))
    for k in (1, 2, 4):
        s = 8 // k
        ref = x.reshape(2, 3, k, s, k, s).mean((3, 5))
        torch.testing.assert_close(build_transform(f'pool{k}')(x), ref)


def test_elementwise_and_kl_variants_against_formulas():
    x = rand((3, 5))
    refs = {'tanh': (x.exp() - (-x).exp()) / (x.exp() + (-x).exp()),
            'sigmoid': 1 / (1 + (-x).exp()), 'relu': x * (x > 0), 'abs': x * x.sign(),
            'log': x.sign() * (1 + x * x.sign()).log()}
    for name, ref in refs.items():
        torch.testing.assert_close(build_transform(name)(x), ref)
    s, t = rand((4, 6), 1), rand((4, 6), 2)
    ps, pt = torch.softmax(s, 1), torch.softmax(t, 1)
    torch.testing.assert_close(build_distance('kl')(s, t), (pt * (pt / ps).log()).sum(1).mean())
    torch.testing.assert_close(build_distance('rkl')(s, t), (ps * (ps / pt).log()).sum(1).mean())


def test_register_variants_helper():
    scratch = Registry('scratch')

    class Base(KnowledgeTransform):
        """Scale by ``factor``."""
        factor = 1.0
        formula = 'T(x) = x'

        def transform(self, x):
            return x * self.factor

    double, triple = register_variants(scratch, Base, {
        'x2': dict(cls_name='Double', factor=2.0, formula='T(x) = 2x'),
        'x3': dict(cls_name='Triple', factor=3.0, formula='T(x) = 3x'),
    })
    assert scratch.get('x2') is double and scratch.get('x3') is triple
    assert double.__name__ == 'Double' and double.__module__ == Base.__module__
    assert double.metadata()['formula'] == 'T(x) = 2x' and Base.formula == 'T(x) = x'
    assert '``x3``' in triple.__doc__ and 'Scale by' in triple.__doc__
    torch.testing.assert_close(triple()(torch.ones(2, 2)), torch.full((2, 2), 3.0))


# --- aliases -----------------------------------------------------------------------------


def test_aliases_are_the_same_class():
    assert DISTANCES.get('mse') is DISTANCES.get('l2')
    assert aliases(DISTANCES) == {'mse': 'l2'}
    assert aliases(KD_TRANSFORMS) == {}
    s, t = rand((3, 4), 0), rand((3, 4), 1)
    assert torch.equal(build_distance('mse')(s, t), build_distance('l2')(s, t))
    torch.testing.assert_close(build_distance('mse')(s, t), ((s - t)**2).sum() / 12)


def test_at_distance_uses_the_satt_transform():
    at = build_distance(dict(type='at', p=3.0, eps=1e-6))
    assert isinstance(at.attention, SpatialAttention)
    assert at.attention.p == 3.0 and at.attention.eps == 1e-6
    assert not list(at.state_dict())  # nothing new in checkpoints
    s, t = rand((2, 3, 4, 4), 0), rand((2, 3, 4, 4), 1)

    def att(f):
        a = f.abs().pow(3).mean(1).reshape(2, -1)
        return a / a.norm(dim=1, keepdim=True)

    torch.testing.assert_close(at(s, t), (att(s) - att(t)).pow(2).mean())


# --- eps in one place --------------------------------------------------------------------

EPS_DEFAULTS = {'bn': 1e-5, 'norm_C': 1e-12, 'norm_HW': 1e-12, 'norm_N': 1e-12,
                'minmax': 1e-8, 'standardize': 1e-7, 'sqrt': 1e-6, 'sample_sim': 1e-12,
                'satt': 1e-12, 'catt': 1e-12, 'pts': 1e-12, 'sn': 1e-5, 'sm': 1e-5,
                'rkd_distance': 1e-12, 'rkd_angle': 1e-12}
EPS_DISTANCE_DEFAULTS = {'cosine': 1e-8, 'pearson': 1e-8, 'dist': 1e-8, 'barlow': 1e-5,
                         'pkt': 1e-7, 'vid': 1e-5, 'crd': 1e-7}


def test_eps_argument_defaults_and_overrides():
    for registry, table, build in ((KD_TRANSFORMS, EPS_DEFAULTS, build_transform),
                                   (DISTANCES, EPS_DISTANCE_DEFAULTS, build_distance)):
        for name, default in table.items():
            cls = registry.get(name)
            assert issubclass(cls, kd.EpsMixin), name
            assert build(name).eps == default, name
            assert build(dict(type=name, eps=0.25)).eps == 0.25, name
            assert build(dict(type=name, eps=None)).eps == default, name
        # every module with an eps argument takes it from the mixin ('at' passes it to satt)
        with_eps = {name for name, cls in registered(registry).items()
                    if 'eps' in inspect.signature(cls).parameters
                    or issubclass(cls, kd.EpsMixin)}
        assert with_eps - {'at'} == set(table)


def test_eps_changes_values():
    x = torch.tensor([[1.0, 3.0]], dtype=D64)
    torch.testing.assert_close(build_transform(dict(type='minmax', eps=2.0))(x),
                               torch.tensor([[0.0, 0.5]], dtype=D64))
    torch.testing.assert_close(build_transform(dict(type='sqrt', eps=5.0))(x),
                               torch.tensor([[math.sqrt(6.0), math.sqrt(8.0)]], dtype=D64))


# --- the pair API ------------------------------------------------------------------------

PAIRED = {'mask', 'dropout', 'svd', 'channel_select', 'interp', 'sn', 'sm', 'pts'}


def test_default_pair_is_each_tensor_alone():
    shapes = {2: (4, 6), 3: (4, 6, 5), 4: (4, 6, 4, 4)}
    for name, cls in registered(KD_TRANSFORMS).items():
        if name in PAIRED:
            assert 'transform_pair' in {k for c in cls.__mro__[:-1] for k in vars(c)
                                        if c is not KnowledgeTransform}, name
            continue
        for rank in cls.ranks:
            s, t = rand(shapes[rank], 1), rand(shapes[rank], 2)
            tr = build_transform(name)
            out_s, out_t = tr.pair(s, t)
            assert torch.equal(out_s, tr(s)) and torch.equal(out_t, tr(t)), (name, rank)


def test_pair_checks_ranks():
    with pytest.raises(ValueError, match='SpatialAttention'):
        build_transform('satt').pair(torch.randn(2, 3, 4, 4), torch.randn(2, 3))
    with pytest.raises(ValueError, match='RandomMask'):
        build_transform('mask').pair(torch.randn(2, 3, 4), torch.randn(2, 3, 4))


@pytest.mark.parametrize('name', ['mask', 'dropout'])
def test_stochastic_pair_applies_one_draw_to_both(name):
    tr = build_transform(name)
    s, t = rand((4, 3, 5, 5), 0), rand((4, 3, 5, 5), 1)
    torch.manual_seed(5)
    out_s, out_t = tr.pair(s, t)
    torch.manual_seed(5)
    mask = tr.sample_mask(s)
    assert torch.equal(out_s, s * mask) and torch.equal(out_t, t * mask)
    ratio = tr.ratio
    expected = {0.0, 1.0} if name == 'mask' else {0.0, 1.0 / ratio}
    assert set(mask.unique().tolist()) <= expected


def test_dropout_pair_with_different_shapes_draws_twice():
    tr = build_transform(dict(type='dropout', ratio=0.5))
    s, t = torch.ones(4, 3), torch.ones(4, 6)
    torch.manual_seed(0)
    out_s, out_t = tr.pair(s, t)
    torch.manual_seed(0)
    assert torch.equal(out_s, tr.sample_mask(s)) and torch.equal(out_t, tr.sample_mask(t))


def test_mask_pairing_survives_an_exception():
    term = DistillTerm(distance='l2', transforms=['mask'])
    x = torch.randn(4, 3, 6, 6)
    with pytest.raises(ValueError):
        term(x, torch.randn(4, 3, 6))  # the teacher tensor has a wrong rank
    for seed in range(3):
        torch.manual_seed(seed)
        assert float(term(x, x.clone())) == 0.0  # both still masked by one draw


def _running_var_sequence(term, pairs):
    out = []
    for s, t in pairs:
        term(s, t)
        out.append(term.transforms[0].running_var.clone())
    return out


@pytest.mark.parametrize('name', ['sn', 'sm'])
def test_stats_pairing_survives_an_exception(name):
    g = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(16, 3, generator=g) * 10, torch.randn(16, 3, generator=g))
             for _ in range(3)]
    fresh = DistillTerm(distance='l2', transforms=[dict(type=name, momentum=None)])
    broken = DistillTerm(distance='l2', transforms=[dict(type=name, momentum=None)])
    broken(*pairs[0])
    for bad_teacher in (torch.randn(16, 3, 2), torch.randn(16, 5)):
        with pytest.raises(ValueError):
            broken(pairs[0][0], bad_teacher)
    fresh(*pairs[0])
    got = _running_var_sequence(broken, pairs[1:])
    ref = _running_var_sequence(fresh, pairs[1:])
    for a, b in zip(got, ref):
        assert torch.equal(a, b)
    # cumulative average of the teacher tensors' variances only
    ref_var = torch.stack([t.var(0, unbiased=False) for _, t in pairs]).mean(0)
    torch.testing.assert_close(got[-1], ref_var)


def test_sn_pair_numbers_and_update_from_both():
    s, t = rand((32, 3), 0) * 4, rand((32, 3), 1)
    v0 = torch.tensor([1.0, 2.0, 4.0], dtype=D64)
    sn = build_transform(dict(type='sn', momentum=0.5, update_from='both',
                              apply_to='both')).double()
    sn.fit(torch.randn(8, 3, dtype=D64))
    sn.running_var.copy_(v0)
    out_s, out_t = sn.pair(s, t)
    v1 = 0.5 * v0 + 0.5 * s.var(0, unbiased=False)  # updated after the student
    v2 = 0.5 * v1 + 0.5 * t.var(0, unbiased=False)  # then after the teacher
    torch.testing.assert_close(out_s, s / torch.sqrt(v0 + 1e-5))
    torch.testing.assert_close(out_t, t / torch.sqrt(v1 + 1e-5))
    torch.testing.assert_close(sn.running_var, v2)
    sn.eval()
    out_s, out_t = sn.pair(s, t)  # eval: no update
    torch.testing.assert_close(out_t, t / torch.sqrt(v2 + 1e-5))
    torch.testing.assert_close(sn.running_var, v2)
    # the default (KDEP): the student passes through, the statistics still update after it
    sn = build_transform(dict(type='sn', momentum=0.5, update_from='both')).double()
    sn.fit(torch.randn(8, 3, dtype=D64))
    sn.running_var.copy_(v0)
    out_s, out_t = sn.pair(s, t)
    assert torch.equal(out_s, s)
    torch.testing.assert_close(out_t, t / torch.sqrt(v1 + 1e-5))
    torch.testing.assert_close(sn.running_var, v2)


def test_alignment_pair_targets_the_student_width():
    s, t = rand((5, 3), 0), rand((5, 7), 1)
    for name in ('channel_select', 'interp', 'svd'):
        tr = build_transform(name)
        out_s, out_t = tr.pair(s, t)
        assert torch.equal(out_s, s) and out_t.shape == (5, 3), name
        assert tr.pair(t, t)[1].shape == (5, 7) or name == 'svd', name  # no sticky width
    torch.testing.assert_close(build_transform('channel_select').pair(s, t)[1], t[:, :3])
    # interp 7 -> 3 (align_corners): channels 0, 3, 6
    torch.testing.assert_close(build_transform('interp').pair(s, t)[1], t[:, [0, 2, 4]])
    torch.testing.assert_close(build_transform(dict(type='interp', mode='linear')).pair(s, t)[1],
                               t[:, [0, 3, 6]])


def test_distill_term_applies_the_chain_pairwise():
    calls = []

    class Recorder(KnowledgeTransform):
        ranks = (2, )
        formula = 'T(x) = x'

        def transform_pair(self, s, t):
            calls.append((s.clone(), t.clone()))
            return s + 1, t - 1

        def transform(self, x):
            raise AssertionError('a term must not call the single-tensor forward')

    term = DistillTerm(distance='l1', transforms=[Recorder(), Recorder()], tau=2.0)
    s, t = rand((3, 4), 0), rand((3, 4), 1)
    loss = term(s, t)
    assert len(calls) == 2
    torch.testing.assert_close(calls[0][0], s / 2)
    torch.testing.assert_close(calls[1][1], t / 2 - 1)
    torch.testing.assert_close(loss, 4.0 * (s / 2 + 2 - (t / 2 - 2)).abs().mean())


def test_no_hidden_pairing_state():
    for name in PAIRED:
        tr = build_transform(name)
        assert not any(k in vars(tr) for k in ('_calls', '_pending')), name


# --- one key list ------------------------------------------------------------------------


def test_term_keys():
    assert TERM_KEYS == ('student', 'teacher', 'distance', 'transforms', 'weight', 'tau',
                         'connector', 'name')
    assert kd.TERM_KEYS is TERM_KEYS and 'TERM_KEYS' in kd.__all__
    params = set(inspect.signature(DistillTerm.__init__).parameters) - {'self'}
    assert params == set(TERM_KEYS) - {'student', 'teacher'}
