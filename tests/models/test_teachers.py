"""Teacher shorthands and teacher config paths, through ``Distiller(...)`` as users write them.

The student is the Fashion-MNIST quick-start one (configs/fashion_mnist/student_fmnist.py:
resnet8 at half width, 10 classes, 1 input channel).
"""
import os.path as osp
import re

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import nn

from kdzoo.models import Distiller, ImageClassifier
from kdzoo.models.architectures import CifarResNet
from kdzoo.models.teachers import REPO_ROOT, set_config_dir
from kdzoo.registry import MODELS
from kdzoo.utils import register_all_modules

register_all_modules()

KD = [dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0, weight=0.9)]
STUDENT_CONFIG = 'configs/fashion_mnist/student_fmnist.py'
KD_CONFIG = 'configs/fashion_mnist/kd_fmnist.py'


def fmnist_student() -> dict:
    return Config.fromfile(osp.join(REPO_ROOT, STUDENT_CONFIG)).model.to_dict()


def batch(n=8):
    gen = torch.Generator().manual_seed(0)
    return dict(inputs=torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=gen),
                data_samples=dict(gt_label=torch.randint(0, 10, (n,), generator=gen)))


def assert_hinton_kd(model, losses, data, tau=4.0, weight=0.9):
    with torch.no_grad():
        s = model.student(data['inputs'], mode='tensor')
        t = model.teacher(data['inputs'], mode='tensor')
    assert t.shape == (len(data['inputs']), 10)
    p_t = F.softmax(t / tau, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / tau, 1))).sum(1).mean()
    torch.testing.assert_close(losses['loss_kd0'], weight * tau**2 * kl)


SHORTHANDS = ['timm/resnet18', 'torchvision/resnet18', 'resnet32x4']


@pytest.mark.parametrize('teacher', SHORTHANDS)
def test_shorthand_teacher_takes_the_students_classes_and_channels(teacher):
    torch.manual_seed(0)
    model = Distiller(student=fmnist_student(), teacher=teacher, distill_terms=KD)
    assert model.teacher.backbone.conv1.in_channels == 1
    assert model.teacher.backbone.fc.out_features == 10
    assert model.teacher_shape_from_student == dict(num_classes=10, in_channels=1)
    model.train()
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    assert_hinton_kd(model, losses, data)


@pytest.mark.parametrize('teacher', SHORTHANDS)
def test_shorthand_teacher_in_the_quickstart_config(teacher):
    """``model.teacher='timm/resnet18'`` in the quick-start KD config, as a user edits it."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, KD_CONFIG))
    cfg.merge_from_dict({'model.teacher': teacher, 'model.teacher_checkpoint': None})
    model = MODELS.build(cfg.model)
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_kd0'}
    assert_hinton_kd(model, losses, data)


def _raw_network(teacher: str) -> nn.Module:
    import timm
    import torchvision
    torch.manual_seed(3)
    if teacher.startswith('timm/'):
        return timm.create_model('resnet18', num_classes=10, in_chans=1)
    net = torchvision.models.get_model('resnet18', weights=None, num_classes=10)
    net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    return net


@pytest.mark.parametrize('teacher', ['timm/resnet18', 'torchvision/resnet18'])
def test_shorthand_teacher_loads_its_checkpoint(tmp_path, teacher):
    """A teacher trained elsewhere and saved as the plain network's state dict."""
    net = _raw_network(teacher)
    path = tmp_path / 'teacher.pth'
    torch.save(net.state_dict(), path)
    model = Distiller(student=fmnist_student(), teacher=teacher, teacher_checkpoint=str(path),
                      distill_terms=KD)
    loaded = model.teacher.backbone.state_dict()
    assert loaded.keys() == net.state_dict().keys()
    for key, value in net.state_dict().items():
        torch.testing.assert_close(loaded[key], value)
    data = model.data_preprocessor(batch(), True)
    with torch.no_grad():
        torch.testing.assert_close(model.teacher(data['inputs'], mode='tensor'),
                                   net.eval()(data['inputs']))


@pytest.mark.parametrize('teacher,kind,key', [
    ('timm/resnet18', 'TimmTeacher', "model_name='resnet18'"),
    ('torchvision/resnet18', 'TorchvisionTeacher', "name='resnet18'"),
])
def test_shorthand_without_student_classes_names_the_key_to_add(teacher, kind, key):
    backbone = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4, 10))  # no num_classes attribute to copy
    student = ImageClassifier(backbone=backbone)
    with pytest.raises(ValueError, match=re.escape(
            f"teacher {teacher!r} needs num_classes") + '.*' + re.escape(
            f"teacher=dict(type='{kind}', {key}, num_classes=N, in_channels=C)")):
        Distiller(student=student, teacher=teacher, distill_terms=KD)


def test_explicit_teacher_keys_win_and_a_bad_forward_names_the_inputs():
    teacher = dict(type='TimmTeacher', model_name='resnet18', num_classes=10, in_channels=3)
    model = Distiller(student=fmnist_student(), teacher=teacher, distill_terms=KD)
    assert model.teacher.backbone.conv1.in_channels == 3
    assert model.teacher_shape_from_student == {}
    data = model.data_preprocessor(batch(), True)
    with pytest.raises(RuntimeError, match=re.escape(
            "teacher TimmTeacher(model_name='resnet18') failed on inputs of shape "
            "(8, 1, 28, 28):")):
        model(**data, mode='loss')


def test_teacher_dict_fills_only_missing_shape_keys():
    teacher = dict(type='TorchvisionTeacher', name='resnet18', in_channels=1)
    model = Distiller(student=fmnist_student(), teacher=teacher, distill_terms=KD)
    assert model.teacher.backbone.fc.out_features == 10
    assert model.teacher_shape_from_student == dict(num_classes=10)


def test_teacher_checkpoint_given_twice_is_refused():
    teacher = dict(type='TimmTeacher', model_name='resnet18', checkpoint='a.pth')
    with pytest.raises(ValueError, match=r"teacher_checkpoint='b.pth' and "
                                         r"teacher\['checkpoint'\]='a.pth'; keep one"):
        Distiller(student=fmnist_student(), teacher=teacher, teacher_checkpoint='b.pth',
                  distill_terms=KD)


def test_a_string_that_is_no_teacher_lists_the_forms():
    with pytest.raises(ValueError, match=r"teacher='configs/fashion_mnist/teacher_fmnist' is "
                                         r"not a teacher: use 'timm/<name>'.*\.py"):
        Distiller(student=fmnist_student(), teacher='configs/fashion_mnist/teacher_fmnist',
                  distill_terms=KD)


# --- teacher config paths -------------------------------------------------------------------

TEACHER_PY = """model = dict(type='ImageClassifier',
             backbone=dict(type='resnet14', num_classes=10, in_channels=1),
             data_preprocessor=dict(type='ImgDataPreprocessor', mean=[72.94], std=[90.0]))
"""
KD_PY = """model = dict(
    type='Distiller',
    student=dict(type='ImageClassifier',
                 backbone=dict(type='resnet8', num_classes=10, in_channels=1),
                 data_preprocessor=dict(type='ImgDataPreprocessor', mean=[72.94], std=[90.0])),
    teacher={teacher!r},
    distill_terms=[dict(student='backbone.fc', teacher='backbone.fc', distance='kl')])
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user's own configs in PROJECT/, commands run from ELSEWHERE/."""
    proj = tmp_path / 'project'
    (proj / 'teachers').mkdir(parents=True)
    (proj / 'teachers' / 'teacher.py').write_text(TEACHER_PY)
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return proj


def test_relative_teacher_config_is_found_next_to_the_config_file(project):
    (project / 'kd.py').write_text(KD_PY.format(teacher='teachers/teacher.py'))
    cfg = set_config_dir(Config.fromfile(str(project / 'kd.py')))
    assert cfg.model.config_dir == str(project)
    model = MODELS.build(cfg.model)
    assert isinstance(model.teacher.backbone, CifarResNet) and model.teacher.backbone.depth == 14
    assert model.teacher_source == \
        f"teachers/teacher.py ({project / 'teachers' / 'teacher.py'})"


def test_repository_configs_are_found_from_any_directory(project):
    """The quick-start KD config, run from another directory (its teacher path is relative
    to the repository root)."""
    cfg = set_config_dir(Config.fromfile(osp.join(REPO_ROOT, KD_CONFIG)))
    cfg.model.teacher_checkpoint = None
    model = MODELS.build(cfg.model)
    assert model.teacher.backbone.depth == 20  # teacher_fmnist.py's resnet20
    assert model.teacher_source.endswith(
        f"({osp.join(REPO_ROOT, 'configs', 'fashion_mnist', 'teacher_fmnist.py')})")


def test_missing_teacher_config_lists_the_places_looked_in(project):
    with pytest.raises(FileNotFoundError) as info:
        Distiller(student=fmnist_student(), teacher='teachers/missing.py',
                  config_dir=str(project), distill_terms=KD)
    message = str(info.value)
    assert message.startswith("teacher config 'teachers/missing.py' not found. Looked in:")
    assert f"{project / 'teachers' / 'missing.py'} (the config file's directory)" in message
    assert f"{osp.join(REPO_ROOT, 'teachers', 'missing.py')} (the kdzoo repository root)" \
        in message
    assert 'current directory' not in message


def test_installed_package_configs_are_found(project, tmp_path, monkeypatch):
    """Without a checkout, ``configs/...`` paths resolve in the package's ``.mim/configs``."""
    from kdzoo.models import teachers
    mim = tmp_path / 'site-packages' / 'kdzoo' / '.mim'
    (mim / 'configs' / 'fashion_mnist').mkdir(parents=True)
    (mim / 'configs' / 'fashion_mnist' / 'teacher_fmnist.py').write_text(TEACHER_PY)
    monkeypatch.setattr(teachers, 'REPO_ROOT', str(tmp_path / 'site-packages'))
    monkeypatch.setattr(teachers, 'MIM_ROOT', str(mim))
    model = Distiller(student=fmnist_student(), teacher='configs/fashion_mnist/teacher_fmnist.py',
                      config_dir=str(project), distill_terms=KD)
    assert model.teacher.backbone.depth == 14  # the packaged file, not the checkout's resnet20
    with pytest.raises(FileNotFoundError) as info:
        Distiller(student=fmnist_student(), teacher='configs/missing.py',
                  config_dir=str(project), distill_terms=KD)
    assert f"{mim / 'configs' / 'missing.py'} (the installed kdzoo package's configs)" in \
        str(info.value)
    assert '(the kdzoo repository root)' not in str(info.value)


def test_without_a_config_file_the_current_directory_is_used(project):
    """The Python API (no config file): relative to the current directory, then the root."""
    with pytest.raises(FileNotFoundError, match=r'teacher\.py \(the current directory'):
        Distiller(student=fmnist_student(), teacher='teacher.py', distill_terms=KD)
    model = Distiller(student=fmnist_student(), teacher='../project/teachers/teacher.py',
                      distill_terms=KD)
    assert model.teacher.backbone.depth == 14


def test_set_config_dir_is_for_distillers_and_keeps_a_given_one(project):
    cfg = set_config_dir(Config.fromfile(osp.join(REPO_ROOT, STUDENT_CONFIG)))
    assert 'config_dir' not in cfg.model
    (project / 'kd.py').write_text(KD_PY.format(teacher='teachers/teacher.py'))
    cfg = Config.fromfile(str(project / 'kd.py'))
    cfg.model.config_dir = '/somewhere/else'
    assert set_config_dir(cfg).model.config_dir == '/somewhere/else'
