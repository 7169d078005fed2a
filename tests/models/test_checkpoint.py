"""Reading checkpoints: weights only, MMEngine's allow-list, errors that name the file."""
import os
import pickle
import re

import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader

from kdzoo.models import Distiller, load_checkpoint_strict
from kdzoo.registry import MODELS
from kdzoo.utils import register_all_modules
from kdzoo.utils.torch_load import load_checkpoint_file

register_all_modules()

PREPROCESSOR = dict(type='ImgDataPreprocessor', mean=[72.94], std=[90.0])
KD = [dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0, weight=0.9)]


def classifier(arch):
    return dict(type='ImageClassifier', data_preprocessor=PREPROCESSOR,
                backbone=dict(type=arch, num_classes=10, in_channels=1))


def distiller(checkpoint):
    return Distiller(student=classifier('resnet8'), teacher=classifier('resnet14'),
                     teacher_checkpoint=str(checkpoint), distill_terms=KD)


class MakeDir:
    """Unpickling this runs ``os.mkdir(path)``: what a malicious checkpoint could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


class AskForInit:
    """Unpickling this asks for ``getattr(HistoryBuffer, '__init__')``."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


@pytest.fixture
def teacher():
    torch.manual_seed(1)
    return MODELS.build(classifier('resnet14'))


def mmengine_checkpoint(path, model):
    """A checkpoint as MMEngine's Runner writes it: weights, the message hub's HistoryBuffers
    (numpy arrays, methods named through getattr), the optimizer's state."""
    hub = MessageHub.get_instance('kdzoo_test_checkpoint')
    for loss in (0.5, 0.25):
        hub.update_scalar('train/loss', loss)
    hub.update_info('iter', 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.save(dict(meta=dict(epoch=1, iter=2, seed=0), state_dict=model.state_dict(),
                    message_hub=hub.state_dict(), optimizer=optimizer.state_dict()), path)
    return str(path)


def test_full_mmengine_checkpoint_loads_as_teacher(tmp_path, teacher):
    path = mmengine_checkpoint(tmp_path / 'epoch_1.pth', teacher)
    # The file needs the allow-list: it is more than tensors.
    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    assert {'builtins.getattr', 'mmengine.logging.history_buffer.HistoryBuffer'} <= needed
    model = distiller(path)
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(model.teacher.state_dict()[key], value)


def test_resume_loader_reads_mmengine_checkpoints_weights_only(tmp_path, teacher):
    """``load_from`` / ``--resume`` go through MMEngine's loader, routed to kdzoo's."""
    path = mmengine_checkpoint(tmp_path / 'epoch_1.pth', teacher)
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    buffer = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(0.375) and buffer.current() == 0.25
    assert checkpoint['message_hub']['runtime_info']['iter'] == 2

    marker = tmp_path / 'resumed_code_ran'
    evil = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=teacher.state_dict(), meta=MakeDir(marker)), evil)
    with pytest.raises(pickle.UnpicklingError, match=re.escape(str(evil))):
        CheckpointLoader.load_checkpoint(str(evil), map_location='cpu')
    assert not marker.exists()


def test_teacher_checkpoint_cannot_run_code(tmp_path, teacher):
    marker = tmp_path / 'teacher_code_ran'
    path = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=teacher.state_dict(), meta=dict(note=MakeDir(marker))), path)
    refused = f'{os.mkdir.__module__}.mkdir'
    with pytest.raises(pickle.UnpicklingError,
                       match=f'teacher checkpoint {re.escape(str(path))} holds '
                             f'{re.escape(refused)}, which kdzoo does not load'):
        distiller(path)
    assert not marker.exists()


def test_student_only_checkpoint_cannot_run_code(tmp_path):
    """``tools/test.py`` loads student-only checkpoints with ``load_checkpoint_strict``."""
    student = MODELS.build(classifier('resnet8'))
    marker = tmp_path / 'student_code_ran'
    path = tmp_path / 'student_latest.pth'
    torch.save(dict(state_dict=student.state_dict(), meta=MakeDir(marker)), path)
    with pytest.raises(pickle.UnpicklingError, match=f'model checkpoint {re.escape(str(path))}'):
        load_checkpoint_strict(student, str(path), owner='model')
    assert not marker.exists()
    clean = tmp_path / 'clean.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict=student.state_dict()), clean)
    assert load_checkpoint_strict(student, str(clean), owner='model') == \
        len(student.state_dict())


def test_getattr_only_reaches_public_methods_of_allowed_classes(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save(dict(x=AskForInit()), path)
    with pytest.raises(pickle.UnpicklingError,
                       match=r"getattr\(<class 'mmengine.logging.history_buffer.HistoryBuffer'>, "
                             r"'__init__'\); only public methods"):
        load_checkpoint_file(str(path), owner='teacher')


@pytest.mark.parametrize('keep', [0.5, 0.0])
def test_truncated_teacher_checkpoint_names_the_file(tmp_path, teacher, keep):
    whole = tmp_path / 'whole.pth'
    torch.save(dict(state_dict=teacher.state_dict()), whole)
    data = whole.read_bytes()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:int(len(data) * keep)])
    what = 'truncated: a cut-off zip archive' if keep else r'empty \(0 bytes\)'
    with pytest.raises(RuntimeError,
                       match=f'teacher checkpoint {re.escape(str(cut))} cannot be read: '
                             f'it is {what}'):
        distiller(cut)


def test_truncated_student_checkpoint_names_the_file(tmp_path):
    student = MODELS.build(classifier('resnet8'))
    whole = tmp_path / 'student.pth'
    torch.save(dict(state_dict=student.state_dict()), whole)
    cut = tmp_path / 'student_cut.pth'
    cut.write_bytes(whole.read_bytes()[:-100])
    with pytest.raises(RuntimeError, match=f'model checkpoint {re.escape(str(cut))} cannot be '
                                           f'read: it is truncated'):
        load_checkpoint_strict(student, str(cut), owner='model')


def test_plain_network_state_dict_loads_into_its_classifier(tmp_path, teacher):
    """A network saved on its own (``conv1.weight``) fits the classifier that wraps it
    (``backbone.conv1.weight``); other keys still fail strictly."""
    path = tmp_path / 'plain.pth'
    torch.save(teacher.backbone.state_dict(), path)
    model = distiller(path)
    torch.testing.assert_close(model.teacher.backbone.conv1.weight,
                               teacher.backbone.conv1.weight)
    partial = {k: v for k, v in teacher.backbone.state_dict().items() if 'fc.' not in k}
    torch.save(partial, path)
    with pytest.raises(RuntimeError, match=r'missing keys: .*backbone\.fc\.weight'):
        distiller(path)
