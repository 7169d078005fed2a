"""FiniteLossHook: training stops at the first non-finite loss (not at the next logging
interval), names the iteration and the loss keys, and leaves WORK_DIR/diverged.json."""
import json
import math
import os.path as osp

import pytest
import torch

from kdzoo.engine import DIVERGED_FILE, FiniteLossHook, NonFiniteLossError

from engine_helpers import ROOT, data_options, fake_runner, train


def test_hook_stops_at_the_first_non_finite_loss_and_names_it(tmp_path):
    hook, runner = FiniteLossHook(), fake_runner(tmp_path)
    (tmp_path / DIVERGED_FILE).write_text('{"stale": true}')
    hook.before_train(runner)
    assert not (tmp_path / DIVERGED_FILE).exists()
    for i, kd in enumerate([0.5, 0.4, math.inf]):
        runner.iter = i
        outputs = dict(loss_cls=torch.tensor(1.0), loss_kd0=torch.tensor(kd),
                       loss=torch.tensor(1.0 + kd), acc=torch.tensor(math.nan))
        if math.isfinite(kd):
            hook.after_train_iter(runner, i, outputs=outputs)
            continue
        with pytest.raises(NonFiniteLossError,
                           match=r'non-finite loss at iteration 3 \(epoch 1, batch 3\): '
                                 r'loss_kd0=inf, loss=inf'):
            hook.after_train_iter(runner, i, outputs=outputs)
    status = json.loads((tmp_path / DIVERGED_FILE).read_text())
    assert status['iter'] == 3 and status['kind'] == 'non-finite'
    assert status['keys'] == ['loss_kd0', 'loss'] and status['losses']['loss_kd0'] == 'inf'


NAN_MODEL = '''
import torch
from kdzoo.models.classifier import ImageClassifier
from kdzoo.registry import MODELS


@MODELS.register_module()
class NaNAtIteration(ImageClassifier):
    """A classifier whose loss is NaN at its ``nan_at``-th training step."""

    def __init__(self, nan_at, **kwargs):
        super().__init__(**kwargs)
        self.nan_at, self.steps = nan_at, 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = super().forward(inputs, data_samples, mode)
        if mode == 'loss':
            self.steps += 1
            if self.steps == self.nan_at:
                out = {k: v * float('nan') for k, v in out.items()}
        return out
'''


@pytest.fixture
def nan_config(tmp_path):
    (tmp_path / 'nan_model.py').write_text(NAN_MODEL)
    config = tmp_path / 'nan_at_3.py'
    config.write_text(
        f"_base_ = ['{ROOT}/configs/fashion_mnist/student_fmnist.py']\n"
        "custom_imports = dict(imports=['nan_model'], allow_failed_imports=False)\n"
        "model = dict(type='NaNAtIteration', nan_at=3)\n"
        "train_cfg = dict(max_epochs=2)\n")
    return config


def test_training_stops_at_the_nan_iteration_not_the_logging_interval(
        nan_config, tmp_path, fmnist_root):
    work = tmp_path / 'run'
    # 64 images / 8 = 8 iterations per epoch; the logger writes every 50 iterations.
    proc = train(nan_config, work, *data_options(fmnist_root), env=dict(PYTHONPATH=str(tmp_path)))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert ('NonFiniteLossError: non-finite loss at iteration 3 (epoch 1, batch 3/8): '
            'loss_cls=nan, loss=nan') in proc.stderr
    assert 'Traceback' not in proc.stderr
    status = json.loads((work / DIVERGED_FILE).read_text())
    assert status['iter'] == 3 and status['epoch'] == 1 and status['keys'] == ['loss_cls', 'loss']
    assert not osp.exists(work / 'epoch_1.pth')


def test_the_check_can_be_turned_off(nan_config, tmp_path, fmnist_root):
    work = tmp_path / 'off'
    proc = train(nan_config, work, *data_options(fmnist_root), 'default_hooks.finite_loss=None',
                 'train_cfg.max_epochs=1', extra=['--no-validate'],
                 env=dict(PYTHONPATH=str(tmp_path)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert osp.isfile(work / 'epoch_1.pth') and not osp.exists(work / DIVERGED_FILE)
