"""Teacher pools: the mean / sum / sample modes against their formulas, one forward per
sampled step, per-member paths and views, theta in checkpoints, and the errors."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.models import Distiller
from kdzoo.registry import MODELS
from kdzoo.utils import register_all_modules

register_all_modules()

PREPROCESSOR = dict(type='ImgDataPreprocessor', mean=[72.94], std=[90.0])
KD = dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0, weight=0.9)
TAU = 4.0


def classifier(arch, num_classes=10, **kwargs):
    return dict(type='ImageClassifier', data_preprocessor=PREPROCESSOR,
                backbone=dict(type=arch, num_classes=num_classes, in_channels=1, **kwargs))


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """Three tiny teachers with different (seeded) weights."""
    root = tmp_path_factory.mktemp('pool')
    paths = {}
    for seed, name in enumerate(('a', 'b', 'c')):
        torch.manual_seed(10 + seed)
        model = MODELS.build(classifier('resnet8', width_mult=0.25))
        paths[name] = str(root / f'{name}.pth')
        torch.save(dict(state_dict=model.state_dict(), meta={}), paths[name])
    return paths


def members(checkpoints, names=('a', 'b', 'c'), extra=None):
    return [dict(name=n, teacher=classifier('resnet8', width_mult=0.25),
                 teacher_checkpoint=checkpoints[n], **(extra or {}).get(n, {}))
            for n in names]


def pool_distiller(checkpoints, pool, names=('a', 'b', 'c'), terms=None, **kwargs):
    return Distiller(student=classifier('resnet8', width_mult=0.25),
                     teachers=members(checkpoints, names), pool=pool,
                     distill_terms=terms or [KD], student_loss_weight=0.1, **kwargs)


def batch(n=8, seed=0):
    torch.manual_seed(seed)
    return dict(inputs=torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8),
                data_samples=dict(gt_label=torch.randint(0, 10, (n,))))


def kd(student_logits, teacher_logits, tau=TAU, weight=0.9):
    p_t = F.softmax(teacher_logits / tau, 1)
    return weight * tau**2 * (p_t * (p_t.log() - F.log_softmax(student_logits / tau, 1))
                              ).sum(1).mean()


def logits(model, inputs):
    with torch.no_grad():
        return [m.model(inputs, mode='tensor') for m in model.pool.members], \
            model.student(inputs, mode='tensor')


def test_mean_is_kd_to_the_average_of_the_members_logits(checkpoints):
    model = pool_distiller(checkpoints, dict(mode='mean'))
    model.train()
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_kd0'}
    teachers, student = logits(model, data['inputs'])
    torch.testing.assert_close(losses['loss_kd0'], kd(student, sum(teachers) / 3))
    # different members: the average is not any one of them
    assert not torch.allclose(teachers[0], teachers[1])


def test_mean_with_theta_is_the_weighted_mix(checkpoints):
    theta = [0.5, 0.3, 0.2]
    model = pool_distiller(checkpoints, dict(mode='mean', theta=theta))
    model.train()
    data = model.data_preprocessor(batch(), True)
    teachers, student = logits(model, data['inputs'])
    mix = sum(w * t for w, t in zip(theta, teachers))
    torch.testing.assert_close(model(**data, mode='loss')['loss_kd0'], kd(student, mix))


def test_sum_is_one_term_per_member(checkpoints):
    model = pool_distiller(checkpoints, dict(mode='sum'))
    model.train()
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_kd0_a', 'loss_kd0_b', 'loss_kd0_c'}
    teachers, student = logits(model, data['inputs'])
    for name, teacher in zip('abc', teachers):
        torch.testing.assert_close(losses[f'loss_kd0_{name}'], kd(student, teacher))


def count_forwards(model):
    counts = {m.name: 0 for m in model.pool.members}
    for m in model.pool.members:
        m.model.register_forward_hook(
            lambda mod, i, o, name=m.name: counts.__setitem__(name, counts[name] + 1))
    return counts


def test_sample_runs_only_the_drawn_member_and_weights_it_by_theta(checkpoints):
    theta = [0.6, 0.3, 0.1]
    model = pool_distiller(checkpoints, dict(mode='sample', theta=theta))
    model.train()
    counts = count_forwards(model)
    data = model.data_preprocessor(batch(), True)
    model(**data, mode='loss')  # the first step runs every member once: the shape check
    assert counts == dict(a=1, b=1, c=1)
    teachers, student = logits(model, data['inputs'])
    drawn = []
    for step in range(12):
        before = dict(counts)
        torch.manual_seed(100 + step)
        expected = int(torch.multinomial(torch.tensor(theta), 1))  # the draw it will make
        torch.manual_seed(100 + step)
        losses = model(**data, mode='loss')
        ran = {n: counts[n] - before[n] for n in counts}
        assert sum(ran.values()) == 1, ran  # exactly one teacher forward per step
        k = 'abc'.index(max(ran, key=ran.get))
        assert k == expected
        drawn.append(k)
        torch.testing.assert_close(losses['loss_kd0'], theta[k] * kd(student, teachers[k]))
    assert len(set(drawn)) > 1


def test_sample_draws_follow_theta(checkpoints):
    model = pool_distiller(checkpoints, dict(mode='sample', theta=dict(a=0.1, b=0.2, c=0.7)))
    torch.manual_seed(0)
    draws = [model.pool.sample() for _ in range(3000)]
    freq = [draws.count(i) / len(draws) for i in range(3)]
    assert freq == pytest.approx([0.1, 0.2, 0.7], abs=0.03)


def test_normalized_scale_weighs_a_uniform_pool_like_one_teacher(checkpoints):
    model = pool_distiller(checkpoints, dict(mode='sample', scale='normalized'))
    model.train()
    data = model.data_preprocessor(batch(), True)
    model(**data, mode='loss')
    counts = count_forwards(model)
    teachers, student = logits(model, data['inputs'])
    losses = model(**data, mode='loss')
    k = 'abc'.index(max(counts, key=counts.get))
    torch.testing.assert_close(losses['loss_kd0'], 1.0 * kd(student, teachers[k]))


def test_one_hot_theta_is_single_teacher_kd(checkpoints):
    model = pool_distiller(checkpoints, dict(mode='sample', theta=[0.0, 1.0, 0.0]))
    single = Distiller(student=classifier('resnet8', width_mult=0.25),
                       teacher=classifier('resnet8', width_mult=0.25),
                       teacher_checkpoint=checkpoints['b'], distill_terms=[KD],
                       student_loss_weight=0.1)
    single.student.load_state_dict(model.student.state_dict())
    model.train(), single.train()
    data = model.data_preprocessor(batch(), True)
    for _ in range(3):
        torch.testing.assert_close(model(**data, mode='loss'), single(**data, mode='loss'))


def test_members_disagreeing_on_shapes_are_named_with_both_shapes(checkpoints):
    teachers = members(checkpoints, ('a', 'b'))
    teachers.append(dict(name='wide', teacher=classifier('resnet8', num_classes=12,
                                                         width_mult=0.25)))
    model = Distiller(student=classifier('resnet8', width_mult=0.25), teachers=teachers,
                      pool=dict(mode='sample'), distill_terms=[KD])
    model.train()
    data = model.data_preprocessor(batch(), True)
    with pytest.raises(ValueError) as info:
        model(**data, mode='loss')
    message = str(info.value)
    assert "member 'wide' gives shape (8, 12)" in message
    assert "member 'a' gives shape (8, 10)" in message
    assert "distill term 'kd0'" in message


class PlainTeacher(nn.Module):
    """A plain network (no MMEngine model) whose logits come from ``head``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.head = nn.Linear(28 * 28, 10)

    def forward(self, x):
        return self.head(x.flatten(1))


def test_members_name_their_own_paths(checkpoints):
    plain = PlainTeacher()
    teachers = members(checkpoints, ('a',)) + [
        dict(name='plain', teacher=plain, paths={'backbone.fc': 'head'})]
    model = Distiller(student=classifier('resnet8', width_mult=0.25), teachers=teachers,
                      pool=dict(mode='sum'), distill_terms=[KD], student_loss_weight=0.1)
    model.train()
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    with torch.no_grad():
        student = model.student(data['inputs'], mode='tensor')
        expected = kd(student, plain(data['inputs']))
    torch.testing.assert_close(losses['loss_kd0_plain'], expected)
    # the same through a per-member dict in the term
    term = dict(KD, teacher=dict(a='backbone.fc', plain='head'))
    model = Distiller(student=classifier('resnet8', width_mult=0.25),
                      teachers=members(checkpoints, ('a',)) + [dict(name='plain',
                                                                    teacher=plain)],
                      pool=dict(mode='sum'), distill_terms=[term], student_loss_weight=0.1)
    assert model.pool.members[1].term_paths == ['head']
    model.train()
    torch.testing.assert_close(model(**data, mode='loss')['loss_kd0_plain'], kd(
        model.student(data['inputs'], mode='tensor').detach(), plain(data['inputs']).detach()))


def test_path_errors_name_the_member(checkpoints):
    base = dict(student=classifier('resnet8', width_mult=0.25), pool=dict(mode='mean'))
    with pytest.raises(KeyError, match=r"member 'plain' has no module 'backbone.fc'"):
        Distiller(teachers=members(checkpoints, ('a',)) + [
            dict(name='plain', teacher=PlainTeacher())], distill_terms=[KD], **base)
    with pytest.raises(KeyError, match=r"paths keys \['backbone.fcc'\].*backbone.fc"):
        Distiller(teachers=members(checkpoints, ('a',)) + [
            dict(name='plain', teacher=PlainTeacher(), paths={'backbone.fcc': 'head'})],
            distill_terms=[KD], **base)
    with pytest.raises(KeyError, match=r"not for \['b'\]"):
        Distiller(teachers=members(checkpoints, ('a', 'b')),
                  distill_terms=[dict(KD, teacher=dict(a='backbone.fc'))], **base)


def test_a_distilled_student_config_is_an_assistant_member(checkpoints):
    model = Distiller(student=classifier('resnet8', width_mult=0.25),
                      teachers=members(checkpoints, ('a',)) + [
                          dict(name='ta', teacher='configs/fashion_mnist/kd_fmnist.py')],
                      pool=dict(mode='mean'), distill_terms=[KD])
    ta = model.pool.members[1].model
    # kd_fmnist.py is a distiller config: its student (half-width resnet8) is the member
    expected = MODELS.build(classifier('resnet8', width_mult=0.5))
    assert sum(p.numel() for p in ta.parameters()) == \
        sum(p.numel() for p in expected.parameters())


def test_member_views(checkpoints):
    extra = dict(b=dict(teacher_input_size=(32, 32)), c=dict(teacher_preprocess='own'))
    model = Distiller(student=dict(classifier('resnet8', width_mult=0.25),
                                   data_preprocessor=dict(type='ImgDataPreprocessor',
                                                          mean=[0.0], std=[1.0])),
                      teachers=members(checkpoints, extra=extra), pool=dict(mode='mean'),
                      distill_terms=[KD])
    model.train()
    seen = {}
    for m in model.pool.members:
        m.model.register_forward_hook(
            lambda mod, i, o, name=m.name: seen.__setitem__(name, i[0].clone()))
    raw = batch()
    data = model.data_preprocessor(raw, True)
    model(**data, mode='loss')
    student_inputs = data['inputs']
    torch.testing.assert_close(seen['a'], student_inputs)  # the student's inputs
    assert seen['b'].shape == (8, 1, 32, 32)
    torch.testing.assert_close(seen['b'], F.interpolate(student_inputs, size=(32, 32),
                                                        mode='bilinear', align_corners=False))
    own = (raw['inputs'].float() - 72.94) / 90.0  # the member's own normalisation
    torch.testing.assert_close(seen['c'], own)


def test_theta_is_saved_and_restored_but_never_trained(checkpoints):
    model = pool_distiller(checkpoints, dict(mode='sample', theta=[0.5, 0.3, 0.2]))
    state = model.state_dict()
    assert [k for k in state if k.startswith('pool')] == ['pool.theta_logits']
    assert not any('teacher' in k for k in state)
    member_params = {id(p) for m in model.pool.members for p in m.model.parameters()}
    assert not member_params & {id(p) for p in model.parameters()}
    other = pool_distiller(checkpoints, dict(mode='sample'))
    other.load_state_dict(state)
    assert torch.equal(other.pool.theta_logits, model.pool.theta_logits)
    assert other.pool.theta_dict() == pytest.approx(dict(a=0.5, b=0.3, c=0.2))
    # a training step leaves theta alone, even with weight decay in the optimizer
    optimizer = torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    other.train()
    data = other.data_preprocessor(batch(), True)
    for _ in range(2):
        sum(v for k, v in other(**data, mode='loss').items() if 'loss' in k).backward()
        assert other.pool.theta_logits.grad is None
        optimizer.step()
        optimizer.zero_grad()
    assert torch.equal(other.pool.theta_logits, model.pool.theta_logits)


def test_members_follow_dtype_and_stay_in_eval_mode(checkpoints):
    model = pool_distiller(checkpoints, dict(mode='mean')).double()
    model.train()
    for m in model.pool.members:
        assert not m.model.training
        assert {p.dtype for p in m.model.parameters()} == {torch.float64}
    data = model.data_preprocessor(batch(), True)
    losses = model(data['inputs'].double(), data['data_samples'], mode='loss')
    assert losses['loss_kd0'].dtype == torch.float64


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(pool=dict(mode='avg')), ValueError, r"pool.mode='avg'; valid: mean, sum, sample"),
    (dict(pool=dict(mode='sample', theta=[0.5, 0.5])), ValueError,
     r"2 entries but the pool has 3 members \['a', 'b', 'c'\]"),
    (dict(pool=dict(mode='sample', theta=[0.5, 0.6, -0.1])), ValueError,
     r"probabilities >= 0; bad entries: \[\('c', -0.1\)\]"),
    (dict(pool=dict(mode='sample', theta=[1, 1, 2])), ValueError, r'sums to 4; give a dist'),
    (dict(pool=dict(mode='sample', theta=dict(a=0.5, b=0.5, d=0.0))), KeyError,
     r"pool.theta has unknown keys \['d'\]"),
    (dict(pool=dict(mode='sum', theta=[0.2, 0.3, 0.5])), ValueError, r"mode 'sum' weighs"),
    (dict(pool=dict(mode='mean', scale='prob')), ValueError, r"scale applies to mode='sample'"),
    (dict(pool=dict(mode='sample', scale='n')), ValueError,
     r"pool.scale='n'; valid: prob, normalized"),
    (dict(pool=dict(mode='sample', thetas=None)), KeyError, r"did you mean 'theta'"),
    (dict(pool=dict(), teacher='resnet8'), ValueError, r'not both'),
    (dict(pool=dict(), teacher_checkpoint='x.pth'), ValueError,
     r"give it inside each member: teachers\[i\]\['teacher_checkpoint'\]"),
])
def test_bad_pool_configs_are_named(checkpoints, kwargs, error, match):
    with pytest.raises(error, match=match):
        pool_distiller(checkpoints, **kwargs)


def test_bad_members_are_named(checkpoints):
    student = classifier('resnet8', width_mult=0.25)
    with pytest.raises(KeyError, match=r"teachers\[1\] has unknown keys \['checkpoint'\].*"
                                       r"did you mean 'teacher_checkpoint'"):
        Distiller(student=student, distill_terms=[KD], teachers=[
            dict(name='a', teacher='resnet8'), dict(name='b', teacher='resnet8',
                                                    checkpoint='x.pth')])
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        Distiller(student=student, distill_terms=[KD], teachers=[
            dict(name='a', teacher='resnet8'), dict(name='a', teacher='resnet14')])
    with pytest.raises(FileNotFoundError, match=r"teachers\[0\] \('a'\).*nope.pth"):
        Distiller(student=student, distill_terms=[KD], teachers=[
            dict(name='a', teacher='resnet8', teacher_checkpoint='/no/nope.pth')])
    with pytest.raises(ValueError, match=r"teachers\[0\]: name='a.b' must be .* without '.'"):
        Distiller(student=student, distill_terms=[KD], teachers=[
            dict(name='a.b', teacher='resnet8')])
    with pytest.raises(ValueError, match=r"teachers\[0\] \('p'\): teacher_checkpoint with a "
                                         r"given module"):
        Distiller(student=student, distill_terms=[KD], teachers=[
            dict(name='p', teacher=PlainTeacher(), teacher_checkpoint='x.pth')])
    with pytest.raises(ValueError, match='per-member paths.*needs a teacher pool'):
        Distiller(student=student, teacher='resnet8',
                  distill_terms=[dict(KD, teacher=dict(a='backbone.fc'))])
    with pytest.raises(ValueError, match=r'pool=\.\.\. configures a teacher pool'):
        Distiller(student=student, teacher='resnet8', pool=dict(mode='mean'),
                  distill_terms=[KD])
