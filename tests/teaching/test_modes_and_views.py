"""The teaching modes: what view each side gets, at its own resolution, with mixup."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from kdzoo.cli.train import merge_args, parse_args
from kdzoo.registry import OPTIMIZERS
from kdzoo.teaching import MODES, Teaching
from kdzoo.teaching.modes import ViewSpec
from kdzoo.teaching.views import draw_view, make_view
from teaching_helpers import batch_of, build, losses_of, save_teacher, teaching_cfg


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    return save_teacher(str(tmp_path_factory.mktemp('teacher') / 'teacher.pth'))


def test_an_unknown_mode_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        Teaching.from_cfg(dict(mode='consistent', size=28))
    for mode in MODES:
        assert mode in str(err.value)
    with pytest.raises(KeyError, match="did you mean 'mixup_alpha'"):
        Teaching.from_cfg(dict(mode='funmatch', size=28, mixup_alfa=1.0))
    with pytest.raises(ValueError, match='funmatch'):
        Teaching.from_cfg(dict(mode='same/ic', size=28, mixup_alpha=1.0))
    with pytest.raises(ValueError, match='no store can hold'):
        Teaching.from_cfg(dict(mode='funmatch', size=28, store='x'))
    assert len(MODES) == 8


def test_mild_crop_and_inception_crop_regions_follow_the_card():
    rng = np.random.default_rng(0)
    mild = ViewSpec('rc', (28, 28), crop_fraction=0.875)
    heavy = ViewSpec('ic', (28, 28), inception_scale=(0.08, 1.0))
    for _ in range(200):
        (top, left, h, w), _ = draw_view(rng, mild, 256, 256)
        assert (h, w) == (224, 224) and 0 <= top <= 32 and 0 <= left <= 32
    areas = [np.prod(draw_view(rng, heavy, 256, 256)[0][2:]) / 256**2 for _ in range(500)]
    assert min(areas) < 0.2 and max(areas) > 0.8  # heavy: from 8 % of the image to all
    assert ViewSpec('cc', (28, 28)).kind == 'cc'
    assert draw_view(rng, ViewSpec('cc', (8, 8)), 256, 256) == ((16, 16, 224, 224), False)


def test_every_mode_gives_the_teacher_the_view_the_card_defines(fmnist_root, ckpt):
    for mode in MODES:
        model, ds = build(teaching_cfg(fmnist_root, ckpt, mode))
        a, b = ds.get_seeded(5, 0, 0), ds.get_seeded(5, 0, 1)
        again = ds.get_seeded(5, 0, 0)
        assert torch.equal(a['inputs'], again['inputs'])  # a pure function of the seeds
        relation = MODES[mode][2]
        if relation == 'same':
            assert 'teacher_inputs' not in a  # the teacher reads the student's batch
        elif relation == 'independent':
            assert not torch.equal(a['inputs'], a['teacher_inputs'])
            assert not torch.equal(a['teacher_inputs'], b['teacher_inputs'])
        elif relation == 'fixed':
            assert torch.equal(a['teacher_inputs'], b['teacher_inputs'])  # every epoch
        else:
            assert a['teacher_inputs'].shape == (8, 1, 28, 28)
            assert torch.equal(a['teacher_inputs'], b['teacher_inputs'])
        if mode != 'fix/rs':
            assert not torch.equal(a['inputs'], b['inputs'])  # the student's view is random
        losses = losses_of(model, batch_of(ds, range(4)))
        assert set(losses) == {'loss_kl', 'loss_feat'}
        assert all(torch.isfinite(v) for v in losses.values())


def test_fix_rs_is_the_resized_image_and_fix_cc_the_centre(fmnist_root, ckpt):
    _, ds = build(teaching_cfg(fmnist_root, ckpt, 'fix/rs'))
    raw = ds.dataset[2]['img'][..., 0]
    assert torch.equal(ds.get_seeded(2, 0, 0)['teacher_inputs'][0], torch.from_numpy(raw))
    _, ds = build(teaching_cfg(fmnist_root, ckpt, 'fix/cc', teacher_size=24,
                               crop_fraction=24 / 28))
    assert torch.equal(ds.get_seeded(2, 0, 0)['teacher_inputs'][0],
                       torch.from_numpy(raw[2:26, 2:26]))


def test_a_high_resolution_teacher_sees_the_same_region_with_more_detail():
    """The teacher's view is cut from the raw pixels at its own size: shrunk to the
    student's size it is the student's view, but it is no upsampling of the student's."""
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 255, (112, 112, 1)).astype(np.uint8)  # fine detail everywhere
    student = ViewSpec('ic', (28, 28), interpolation='area')
    teacher = ViewSpec('ic', (112, 112), interpolation='area')
    for seed in range(5):
        s = make_view(raw, student, seed).astype(np.float32)
        t = make_view(raw, teacher, seed).astype(np.float32)
        t_small = F.adaptive_avg_pool2d(torch.from_numpy(t[..., 0])[None], (28, 28))[0]
        s_big = F.interpolate(torch.from_numpy(s[..., 0])[None, None], size=(112, 112),
                              mode='bilinear', align_corners=False)[0, 0]
        same_region = (t_small - torch.from_numpy(s[..., 0])).abs().mean()
        detail = (torch.from_numpy(t[..., 0]) - s_big).abs().mean()
        assert same_region < 6  # rounding of the region only
        assert detail > 5 * same_region and detail > 30  # detail the student has not


def test_funmatch_mixes_teacher_and_student_inputs_alike(fmnist_root, ckpt):
    model, ds = build(teaching_cfg(fmnist_root, ckpt, 'funmatch', teacher_size=56))
    batch = batch_of(ds, range(6))
    model.train()
    torch.manual_seed(3)
    data = model.data_preprocessor(batch, True)
    torch.manual_seed(3)
    lam = float(torch.distributions.Beta(1.0, 1.0).sample())
    plain = model.data_preprocessor.student_preprocessor(
        dict(inputs=batch['inputs'], data_samples=None), False)['inputs']
    torch.testing.assert_close(data['inputs'], lam * plain + (1 - lam) * plain.roll(1, 0))
    teacher = model.data_preprocessor.student_preprocessor(
        dict(inputs=batch['teacher_inputs'], data_samples=None), False)['inputs']
    torch.testing.assert_close(data['teacher_inputs'],
                               lam * teacher + (1 - lam) * teacher.roll(1, 0))
    # evaluation batches are not mixed
    assert torch.equal(model.data_preprocessor(batch, False)['inputs'], plain)


def test_funmatch_refuses_a_task_loss_on_unmixed_labels(fmnist_root, ckpt):
    cfg = teaching_cfg(fmnist_root, ckpt, 'funmatch')
    cfg.model.student_loss_weight = 0.5
    with pytest.raises(ValueError, match='student_loss_weight=0'):
        build(cfg)


def test_one_config_field_selects_the_mode_from_the_command_line(tmp_path, fmnist_root):
    args = parse_args(['configs/funmatch/funmatch_fmnist.py', '--work-dir', str(tmp_path),
                       '--cfg-options', 'teaching.mode=ind/rc',
                       'teaching.mixup_alpha=None', 'teaching.teacher_size=56'])
    cfg = merge_args(Config.fromfile(args.config), args)
    assert cfg.model.teaching.mode == 'ind/rc'
    dataset = cfg.train_dataloader.dataset
    assert dataset.type == 'TeachingDataset' and dataset.teaching.teacher_size == 56
    assert dataset.dataset.pipeline == [] and dataset.pack.type == 'PackClsInputs'
    cfg.train_dataloader.sampler = dict(type='DefaultSampler')
    cfg.train_dataloader.dataset = dataset.dataset
    from kdzoo.teaching import apply_teaching
    with pytest.raises(ValueError, match='SeededSampler'):
        apply_teaching(cfg)


def test_a_student_alone_gets_the_modes_student_views_only(fmnist_root, ckpt):
    cfg = teaching_cfg(fmnist_root, ckpt, 'ind/ic')
    cfg.model = cfg.model.student
    _, ds = build(cfg)
    sample = ds.get_seeded(1, 0, 0)
    assert 'teacher_inputs' not in sample and sample['inputs'].shape == (1, 28, 28)


def test_shampoo_is_an_mmengine_optimizer():
    net = torch.nn.Linear(4, 3)
    for name in ('Shampoo', 'ScalableShampoo'):
        opt = OPTIMIZERS.build(dict(type=name, params=net.parameters(), lr=0.1))
        before = net.weight.detach().clone()
        net(torch.randn(8, 4)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
        assert not torch.equal(before, net.weight)


def test_a_teaching_view_is_also_an_ordinary_pipeline_step(fmnist_root):
    from kdzoo.datasets import FashionMNIST, SeededIndex
    with pytest.raises(ValueError, match='valid: resize, cc, rc, ic'):
        FashionMNIST(data_root=fmnist_root, pipeline=[dict(type='kdzoo.TeachingView', kind='xx',
                                                           size=28)])
    ds = FashionMNIST(data_root=fmnist_root, indices=8, pipeline=[
        dict(type='kdzoo.TeachingView', kind='ic', size=20), dict(type='kdzoo.PackClsInputs')])
    a, b = ds[SeededIndex(3, 0, 0)], ds[SeededIndex(3, 0, 0)]
    assert a['inputs'].shape == (1, 20, 20) and torch.equal(a['inputs'], b['inputs'])
    assert not torch.equal(a['inputs'], ds[SeededIndex(3, 0, 1)]['inputs'])


def test_the_imagenet_recipe_keeps_loading_and_cuts_the_teacher_at_384():
    from kdzoo.teaching import apply_teaching
    cfg = apply_teaching(Config.fromfile('configs/funmatch/funmatch_imagenet_bit.py'))
    dataset = cfg.train_dataloader.dataset
    assert dataset.type == 'TeachingDataset' and dataset.teacher_views
    assert [s['type'] for s in dataset.dataset.pipeline] == ['mmcv.LoadImageFromFile']
    assert cfg.model.teaching.teacher_size == 384 and cfg.model.teaching.size == 224
    assert cfg.optim_wrapper.clip_grad.max_norm == 1.0
