"""The Distiller: terms, teacher handling, errors, checkpoints."""
import copy
import logging

import re

import pytest
import torch
import torch.nn.functional as F

from kdzoo.models import Distiller, FeatureRecorder
from kdzoo.registry import MODELS
from kdzoo.utils import register_all_modules

register_all_modules()

PREPROCESSOR = dict(type='ImgDataPreprocessor', mean=[72.94], std=[90.0])


def classifier(arch, **kwargs):
    return dict(type='ImageClassifier', data_preprocessor=PREPROCESSOR,
                backbone=dict(type=arch, num_classes=10, in_channels=1, **kwargs))


@pytest.fixture
def teacher_ckpt(tmp_path):
    torch.manual_seed(1)
    teacher = MODELS.build(classifier('resnet14'))
    path = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=teacher.state_dict(), meta={}), path)
    return str(path)


def kd_distiller(teacher_ckpt, terms=None, **kwargs):
    terms = terms or [dict(student='backbone.fc', teacher='backbone.fc', distance='kl',
                           tau=4.0, weight=0.9)]
    return Distiller(student=classifier('resnet8'), teacher=classifier('resnet14'),
                     teacher_checkpoint=teacher_ckpt, distill_terms=terms, **kwargs)


def batch(n=8):
    torch.manual_seed(0)
    return dict(inputs=torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8),
                data_samples=dict(gt_label=torch.randint(0, 10, (n,))))


def test_kd_loss_matches_hinton_formula(teacher_ckpt):
    model = kd_distiller(teacher_ckpt, student_loss_weight=0.1)
    model.train()
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_kd0'}
    with torch.no_grad():
        s = model.student(data['inputs'], mode='tensor')
        t = model.teacher(data['inputs'], mode='tensor')
    tau = 4.0
    p_t = F.softmax(t / tau, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / tau, 1))).sum(1).mean()
    torch.testing.assert_close(losses['loss_kd0'], 0.9 * tau**2 * kl)
    ce = F.cross_entropy(s, data['data_samples']['gt_label'])
    torch.testing.assert_close(losses['loss_cls'], 0.1 * ce)


def test_teacher_is_frozen_and_never_saved(teacher_ckpt):
    model = kd_distiller(teacher_ckpt)
    model.train()
    assert not model.teacher.training
    assert all(not p.requires_grad for p in model.teacher.parameters())
    assert not any(k.startswith('teacher') for k in model.state_dict())
    teacher_params = {id(p) for p in model.teacher.parameters()}
    assert not teacher_params & {id(p) for p in model.parameters()}
    data = model.data_preprocessor(batch(), True)
    before = copy.deepcopy(model.teacher.state_dict())
    losses = model(**data, mode='loss')
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    grads = [p.grad for p in model.student.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    for key, value in model.teacher.state_dict().items():  # BN stats untouched
        torch.testing.assert_close(value, before[key])


DEVICES = ['meta', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='no GPU'))]


@pytest.mark.parametrize('device', DEVICES)
def test_teacher_follows_the_device(teacher_ckpt, device):
    """The teacher is outside the module tree, yet ``.to()`` moves all of it."""
    model = kd_distiller(teacher_ckpt).to(device)
    tensors = list(model.teacher.parameters()) + list(model.teacher.buffers())
    assert tensors and {t.device.type for t in tensors} == {device}
    assert {t.device.type for t in model.student.parameters()} == {device}
    if device != 'meta':
        data = model.data_preprocessor(batch(), True)
        assert data['inputs'].device.type == device
        losses = model(**data, mode='loss')
        assert losses['loss_kd0'].device.type == device
        assert torch.isfinite(losses['loss_kd0'])


def test_teacher_follows_the_dtype(teacher_ckpt):
    model = kd_distiller(teacher_ckpt).double()
    floats = [t for t in list(model.teacher.parameters()) + list(model.teacher.buffers())
              if t.is_floating_point()]
    assert floats and {t.dtype for t in floats} == {torch.float64}
    data = model.data_preprocessor(batch(), True)
    inputs = data['inputs'].double()
    losses = model(inputs, data['data_samples'], mode='loss')
    assert losses['loss_kd0'].dtype == torch.float64
    with torch.no_grad():
        assert model.teacher(inputs, mode='tensor').dtype == torch.float64


def test_teacher_checkpoint_is_loaded(teacher_ckpt):
    model = kd_distiller(teacher_ckpt)
    saved = torch.load(teacher_ckpt)['state_dict']
    for key, value in model.teacher.state_dict().items():
        torch.testing.assert_close(value, saved[key])


def test_missing_teacher_checkpoint_fails_at_build(tmp_path):
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        kd_distiller(missing)


def test_mismatched_teacher_checkpoint_names_keys(tmp_path):
    other = MODELS.build(classifier('resnet8'))
    path = tmp_path / 'wrong.pth'
    torch.save(dict(state_dict=other.state_dict()), path)
    with pytest.raises(RuntimeError, match='missing keys: .*backbone.layer'):
        kd_distiller(str(path))


def test_unknown_distance_lists_valid_names(teacher_ckpt):
    terms = [dict(student='backbone.fc', teacher='backbone.fc', distance='kll')]
    with pytest.raises(KeyError, match=r"unknown distance 'kll'.*Valid names:.*\bkl\b"):
        kd_distiller(teacher_ckpt, terms)


def test_unknown_transform_lists_valid_names(teacher_ckpt):
    terms = [dict(student='backbone.fc', teacher='backbone.fc', distance='l2',
                  transforms=['softmax_Q'])]
    with pytest.raises(KeyError, match=r"unknown KD transform 'softmax_Q'.*softmax_C"):
        kd_distiller(teacher_ckpt, terms)


def test_unknown_module_suggests_nearest(teacher_ckpt):
    terms = [dict(student='backbone.layr2', teacher='backbone.layer2', distance='l2')]
    with pytest.raises(KeyError, match=r"student has no module 'backbone.layr2'.*layer2"):
        kd_distiller(teacher_ckpt, terms)


def test_unknown_term_key_is_named(teacher_ckpt):
    terms = [dict(student='backbone.fc', teacher='backbone.fc', distance='kl', temp=4)]
    with pytest.raises(KeyError, match=r"unknown keys \['temp'\].*valid: .*\btau\b"):
        kd_distiller(teacher_ckpt, terms)


def test_unknown_term_key_suggests_the_close_one(teacher_ckpt):
    from kdzoo.kd import TERM_KEYS
    kd = dict(student='backbone.fc', teacher='backbone.fc', distance='kl')
    terms = [kd, dict(kd, wieght=2.0)]
    with pytest.raises(KeyError) as info:
        kd_distiller(teacher_ckpt, terms)
    message = str(info.value)
    assert "distill_terms[1] has unknown keys ['wieght']" in message
    assert "did you mean 'weight'?" in message
    assert all(key in message for key in TERM_KEYS)


def test_missing_term_key_is_named(teacher_ckpt):
    terms = [dict(student='backbone.fc', distance='kl')]
    with pytest.raises(KeyError, match=r"distill_terms\[0\] needs the key 'teacher'"):
        kd_distiller(teacher_ckpt, terms)


def test_shape_mismatch_prints_both_shapes(teacher_ckpt):
    # resnet8 layer3 has 64 channels; resnet14 layer3 too, but layer2 (32) vs layer3 (64):
    terms = [dict(student='backbone.layer2', teacher='backbone.layer3', distance='l2')]
    model = kd_distiller(teacher_ckpt, terms)
    data = model.data_preprocessor(batch(), True)
    with pytest.raises(ValueError, match=r'\(8, 32, 14, 14\).*\(8, 64, 7, 7\).*ConvConnector'):
        model(**data, mode='loss')


def test_connector_aligns_shapes(teacher_ckpt):
    terms = [dict(student='backbone.layer2', teacher='backbone.layer3', distance='l2',
                  weight=10.0,
                  connector=dict(type='ConvConnector', in_channels=32, out_channels=64))]
    model = kd_distiller(teacher_ckpt, terms)
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    losses['loss_kd0'].backward()
    assert model.terms[0].connector.conv.weight.grad.abs().sum() > 0
    assert any(k.startswith('terms.0.connector') for k in model.state_dict())


def test_tuple_output_needs_an_index():
    class TwoOutputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.branch = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.branch(x), 2 * x

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = TwoOutputs()

        def forward(self, x):
            first, second = self.pair(x)
            return first + second

    net, x = Net(), torch.randn(2, 3)
    with FeatureRecorder(net, ['pair[1]']) as recorder:
        net(x)
    torch.testing.assert_close(recorder.get('pair[1]'), 2 * x)
    with pytest.raises(TypeError, match=r'pick one with pair\[i\]'):
        with FeatureRecorder(net, ['pair']):
            net(x)


def test_predict_uses_the_student(teacher_ckpt):
    model = kd_distiller(teacher_ckpt)
    model.eval()
    data = model.data_preprocessor(batch(4), False)
    out = model(**data, mode='predict')
    expected = model.student(data['inputs'], mode='tensor').softmax(1)
    torch.testing.assert_close(torch.stack([o['pred_score'] for o in out]), expected)


def test_student_loss_weight_zero_skips_task_loss(teacher_ckpt):
    model = kd_distiller(teacher_ckpt, student_loss_weight=0.0)
    data = model.data_preprocessor(batch(), True)
    assert set(model(**data, mode='loss')) == {'loss_kd0'}


def test_teacher_input_size_resizes_what_the_teacher_sees(teacher_ckpt):
    model = kd_distiller(teacher_ckpt, teacher_input_size=(32, 32))
    data = model.data_preprocessor(batch(), True)
    expected = F.interpolate(data['inputs'], size=(32, 32), mode='bilinear',
                             align_corners=False)
    torch.testing.assert_close(data['teacher_inputs'], expected)
    seen = []
    model.teacher.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    assert torch.isfinite(model(**data, mode='loss')['loss_kd0'])
    torch.testing.assert_close(seen[0], expected)


def test_own_preprocessing_normalises_the_teacher_inputs_its_way(teacher_ckpt):
    teacher = dict(classifier('resnet14'),
                   data_preprocessor=dict(type='ImgDataPreprocessor', mean=[10.0], std=[2.0]))
    model = Distiller(student=classifier('resnet8'), teacher=teacher,
                      teacher_checkpoint=teacher_ckpt, teacher_preprocess='own',
                      distill_terms=[dict(student='backbone.fc', teacher='backbone.fc',
                                          distance='kl', tau=4.0)])
    raw = batch()
    pixels = raw['inputs'].float()
    data = model.data_preprocessor(raw, True)
    torch.testing.assert_close(data['inputs'], (pixels - 72.94) / 90.0)
    torch.testing.assert_close(data['teacher_inputs'], (pixels - 10.0) / 2.0)
    seen = {}
    model.student.backbone.register_forward_pre_hook(
        lambda module, args: seen.__setitem__('student', args[0]))
    model.teacher.backbone.register_forward_pre_hook(
        lambda module, args: seen.__setitem__('teacher', args[0]))
    model(**data, mode='loss')
    torch.testing.assert_close(seen['student'], (pixels - 72.94) / 90.0)
    torch.testing.assert_close(seen['teacher'], (pixels - 10.0) / 2.0)
    # In evaluation only the student runs, on its own normalisation.
    assert 'teacher_inputs' not in model.data_preprocessor(raw, False)


def test_teacher_shorthands(tmp_path):
    from kdzoo.models.teachers import teacher_config
    assert teacher_config('timm/resnet18', num_classes=3)['type'] == 'TimmTeacher'
    assert teacher_config('torchvision/resnet18')['type'] == 'TorchvisionTeacher'
    assert teacher_config('mmdet::retinanet/x.py')['type'] == 'ConfigTeacher'
    assert teacher_config('configs/x.py')['type'] == 'ConfigTeacher'
    cfg = teacher_config('resnet32x4', checkpoint='a.pth')
    assert cfg['type'] == 'ModelTeacher' and cfg['checkpoint'] == 'a.pth'
    assert cfg['model']['backbone']['type'] == 'resnet32x4'


def test_timm_teacher_distils_into_kdzoo_student(tmp_path):
    timm_teacher = dict(type='TimmTeacher', model_name='resnet18', num_classes=10,
                        in_channels=1, data_preprocessor=PREPROCESSOR)
    model = Distiller(student=classifier('resnet8'), teacher=timm_teacher,
                      distill_terms=[dict(student='backbone.fc', teacher='backbone.fc',
                                          distance='kl', tau=2.0)])
    data = model.data_preprocessor(batch(4), True)
    assert torch.isfinite(model(**data, mode='loss')['loss_kd0'])


# --- every term error names its term ------------------------------------------------------


def term_error(teacher_ckpt, term, run=True):
    """The error of a distiller with this one term, at build time or at its first loss."""
    term = dict(term, name='t')
    with pytest.raises(Exception) as info:
        model = kd_distiller(teacher_ckpt, [term])
        if run:
            model(**model.data_preprocessor(batch(), True), mode='loss')
    error = info.value
    return error, (error.args[0] if isinstance(error, KeyError) else str(error))


def test_connector_of_other_channels_names_term_connector_and_shapes(teacher_ckpt):
    term = dict(student='backbone.layer2', teacher='backbone.layer3', distance='l2',
                connector=dict(type='ConvConnector', in_channels=16, out_channels=64))
    error, message = term_error(teacher_ckpt, term)
    assert isinstance(error, ValueError)
    assert message == (
        "distill term 't' (backbone.layer2 -> backbone.layer3): connector "
        "ConvConnector(in_channels=16, out_channels=64) expects 16 input channels, but the "
        "student feature 'backbone.layer2' has shape (8, 32, 14, 14) (32 channels); the "
        "teacher feature 'backbone.layer3' has shape (8, 64, 7, 7). Set the connector's "
        "in_channels=32, out_channels=64.")


@pytest.mark.parametrize('term,run,kind,rest', [
    (dict(student='backbone.layer2', teacher='backbone.layer3', distance='l2'), True,
     ValueError, r'shape mismatch; student feature \(8, 32, 14, 14\)'),
    (dict(student='backbone.fc', teacher='backbone.fc', distance='kll'), False,
     KeyError, r"unknown distance 'kll'"),
    (dict(student='backbone.fc', teacher='backbone.fc', distance='l2',
          transforms=['softmax_Q']), False, KeyError, r"unknown KD transform 'softmax_Q'"),
    (dict(student='backbone.layr2', teacher='backbone.layer2', distance='l2'), False,
     KeyError, r"student has no module 'backbone.layr2'"),
    (dict(student='backbone.fc', teacher='backbone.layer9', distance='l2'), False,
     KeyError, r"teacher has no module 'backbone.layer9'"),
    (dict(student='backbone.fc', teacher='backbone.fc', distance='l2',
          connector=dict(type='LinearConnector', in_channels=7, out_channels=10)), True,
     ValueError, r'connector LinearConnector\(in_channels=7, out_channels=10\) expects 7'),
])
def test_every_term_error_starts_with_its_term(teacher_ckpt, term, run, kind, rest):
    error, message = term_error(teacher_ckpt, term, run)
    assert isinstance(error, kind)
    prefix = f"distill term 't' ({term['student']} -> {term['teacher']}): "
    assert message.startswith(prefix), message
    assert re.match(rest, message[len(prefix):]), message


# --- the start-up summary -------------------------------------------------------------------


@pytest.fixture
def log_records():
    """Records of MMEngine's current logger (where ``print_log(logger='current')`` goes)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def summaries(records):
    return [r.getMessage() for r in records if r.getMessage().startswith('Distiller:')]


def test_start_up_summary_names_teacher_weights_and_terms(teacher_ckpt, log_records):
    terms = [dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0,
                  weight=0.9),
             dict(name='feat', student='backbone.layer2', teacher='backbone.layer3',
                  transforms=['satt'], distance='l2', weight=1000.0,
                  connector=dict(type='ConvConnector', in_channels=32, out_channels=64))]
    model = kd_distiller(teacher_ckpt, terms, teacher_input_size=(32, 32))
    assert len(summaries(log_records)) == 1
    record = [r for r in log_records if r.getMessage().startswith('Distiller:')][0]
    assert record.levelno == logging.INFO
    tensors = len(torch.load(teacher_ckpt)['state_dict'])
    assert tensors == len(model.teacher.state_dict()) > 0
    assert record.getMessage().splitlines() == [
        'Distiller: teacher ImageClassifier(backbone=resnet14)',
        f'  teacher weights: {teacher_ckpt} ({tensors} tensors)',
        "  teacher inputs: the student's inputs, resized to (32, 32)",
        "  term 'kd0': backbone.fc -> backbone.fc, transforms=[], distance='kl', weight=0.9, "
        'tau=4.0, connector=None',
        "  term 'feat': backbone.layer2 -> backbone.layer3, transforms=['satt'], "
        "distance='l2', weight=1000.0, tau=1.0, "
        'connector=ConvConnector(in_channels=32, out_channels=64)',
    ]
    assert not [r for r in log_records if r.levelno >= logging.WARNING]
    # Training steps log nothing more.
    model(**model.data_preprocessor(batch(), True), mode='loss')
    assert len(summaries(log_records)) == 1


def test_start_up_summary_warns_about_a_random_teacher(log_records):
    Distiller(student=classifier('resnet8'), teacher='timm/resnet18',
              distill_terms=[dict(student='backbone.fc', teacher='backbone.fc',
                                  distance='kl')])
    messages = summaries(log_records)
    lines = messages[0].splitlines()
    assert lines[:3] == ['Distiller: teacher timm/resnet18',
                         '  teacher num_classes=10, in_channels=1: taken from the student',
                         '  teacher weights: random init (no teacher_checkpoint)']
    warnings = [r for r in log_records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith(
        'Distiller: the teacher (timm/resnet18) is a random init: no teacher_checkpoint')
