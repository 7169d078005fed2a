"""DynaKD's search stage (theta-step gradient, a useless member losing its mass, the
held-out split, resume) and evaluation stage (candidates, the driver end to end)."""
import importlib.util
import json
import os.path as osp
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from torch import nn

from kdzoo.engine import DynaKDSearchHook, HeldOutSplit, held_out_indices
from kdzoo.models import Distiller
from kdzoo.models.pool import unrolled_validation_loss
from kdzoo.utils import register_all_modules

register_all_modules()
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ENV = dict(__import__('os').environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')

# --- a constructed problem: labels are argmax(W x); one member knows W, others are noise ---
D, C = 16, 5
W_TRUE = torch.randn(C, D, generator=torch.Generator().manual_seed(0))


class Linear(nn.Module):
    """logits = weight @ x; ``weight`` given (the oracle) or random from ``seed``."""

    def __init__(self, weight=None, seed=0, scale=2.0):
        super().__init__()
        self.fc = nn.Linear(D, C)
        if weight is None:
            weight = torch.randn(C, D, generator=torch.Generator().manual_seed(seed)) * scale
        with torch.no_grad():
            self.fc.weight.copy_(weight)
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(x.flatten(1))


def problem_data(n, seed):
    x = torch.randn(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed))
    return dict(inputs=x, data_samples=dict(gt_label=(x.flatten(1) @ W_TRUE.T).argmax(1)))


def problem_items(n, seed):
    data = problem_data(n, seed)
    return [dict(inputs=data['inputs'][i],
                 data_samples=dict(gt_label=data['data_samples']['gt_label'][i]))
            for i in range(n)]


def problem_distiller(student_scale=0.1, mode='sample'):
    student = Linear(seed=5)
    with torch.no_grad():
        student.fc.weight.mul_(student_scale / 2.0)
    return Distiller(
        student=dict(type='ImageClassifier', backbone=student),
        teachers=[dict(name='oracle', teacher=Linear(W_TRUE * 3)),
                  dict(name='noise1', teacher=Linear(seed=1)),
                  dict(name='noise2', teacher=Linear(seed=2))],
        pool=dict(mode=mode), student_loss_weight=0.1,
        distill_terms=[dict(student='backbone.fc', teacher='fc', distance='kl', tau=2.0)])


def fake_runner(model, name):
    return SimpleNamespace(model=model, distributed=False, epoch=0, iter=0, seed=0,
                           message_hub=MessageHub.get_instance(name))


def test_theta_gradient_is_the_unrolled_validation_gradient():
    """Non-zero, and equal to central finite differences of L_val(w'(theta))."""
    model = problem_distiller().double()
    model.train()
    train = {k: v for k, v in problem_data(32, 1).items()}
    train['inputs'] = train['inputs'].double()
    val = problem_data(32, 2)
    val['inputs'] = val['inputs'].double()
    theta = model.pool.theta_logits
    with torch.no_grad():
        theta.copy_(torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64))
    theta.requires_grad_(True)
    grad, = torch.autograd.grad(unrolled_validation_loss(model, train, val, lr=0.5), theta)
    theta.requires_grad_(False)
    assert grad.abs().min() > 1e-4  # every member's logit gets a gradient
    eps = 1e-5
    numeric = torch.zeros(3, dtype=torch.float64)
    for i in range(3):
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                theta[i] += sign * eps
            values.append(float(unrolled_validation_loss(model, train, val, lr=0.5)))
            with torch.no_grad():
                theta[i] -= sign * eps
        numeric[i] = (values[0] - values[1]) / (2 * eps)
    torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-8)
    # without the unrolled step the validation loss does not depend on theta at all
    theta.requires_grad_(True)
    loss = unrolled_validation_loss(model, train, val, lr=0.0)
    zero, = torch.autograd.grad(loss, theta, allow_unused=True)
    theta.requires_grad_(False)
    assert zero is None or float(zero.abs().max()) == 0.0


def test_theta_step_changes_only_theta():
    model = problem_distiller()
    model.train()
    hook = DynaKDSearchHook(dataset=problem_items(64, 3), batch_size=16, theta_lr=0.1,
                            unroll_lr=0.5)
    runner = fake_runner(model, 'dynakd-only-theta')
    hook.before_run(runner)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    hook.before_train_iter(runner, 0, problem_data(16, 4))
    after = model.state_dict()
    changed = [k for k in state if not torch.equal(state[k], after[k])]
    assert changed == ['pool.theta_logits']
    assert model.pool.theta_logits.grad is None and not model.pool.theta_logits.requires_grad
    hub = runner.message_hub.log_scalars
    assert {'train/theta_oracle', 'train/dynakd_val_loss'} <= set(hub)


def test_learned_theta_moves_away_from_useless_members():
    torch.manual_seed(0)
    model = problem_distiller()
    model.train()
    hook = DynaKDSearchHook(dataset=problem_items(256, 1), batch_size=64, theta_lr=0.1,
                            unroll_lr=0.5)
    runner = fake_runner(model, 'dynakd-useless')
    hook.before_run(runner)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for it in range(30):
        runner.iter = it
        batch = problem_data(64, 100 + it)
        hook.before_train_iter(runner, it, batch)  # theta-step (student frozen)
        losses = model(**model.data_preprocessor(batch, True), mode='loss')  # w-step
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optimizer.step()
        optimizer.zero_grad()
    theta = model.pool.theta_dict()
    assert theta['oracle'] > 0.55, theta  # from 1/3
    assert theta['noise1'] < 0.25 and theta['noise2'] < 0.25, theta


def test_the_hook_needs_a_sample_pool_with_positive_theta():
    hook = DynaKDSearchHook(dataset=problem_items(8, 0))
    with pytest.raises(ValueError, match=r"needs pool=dict\(mode='sample'\).*'mean'"):
        hook.before_run(fake_runner(problem_distiller(mode='mean'), 'dynakd-mode'))
    model = problem_distiller()
    with torch.no_grad():
        model.pool.theta_logits[1] = float('-inf')
    with pytest.raises(ValueError, match=r"members \['noise1'\] have theta = 0"):
        hook.before_run(fake_runner(model, 'dynakd-zero'))


def test_held_out_split_is_seeded_and_disjoint(fmnist_root):
    train, val = held_out_indices(512, 100, seed=0)
    assert len(val) == 100 and len(train) == 412 and not set(train) & set(val)
    assert sorted(train + val) == list(range(512))
    assert (train, val) == held_out_indices(512, 100, seed=0)
    assert val != held_out_indices(512, 100, seed=1)[1]
    sub_train, sub_val = held_out_indices(512, 100, seed=0, train_size=50)
    assert sub_val == val and set(sub_train) <= set(train) and len(sub_train) == 50
    inner = dict(type='FashionMNIST', split='train', data_root=fmnist_root)
    parts = {part: HeldOutSplit(dict(inner), part=part, val_size=100, seed=0)
             for part in ('train', 'val')}
    assert len(parts['train']) == 412 and len(parts['val']) == 100
    images = {part: {ds[i]['img'].tobytes() + bytes([ds[i]['gt_label']])
                     for i in range(len(ds))} for part, ds in parts.items()}
    full = HeldOutSplit(dict(inner), part='val', val_size=511, seed=0)
    assert len(full) == 511
    # the val part holds exactly the images at the held-out indices
    from kdzoo.datasets import FashionMNIST
    whole = FashionMNIST(split='train', data_root=fmnist_root)
    assert images['val'] == {whole[i]['img'].tobytes() + bytes([whole[i]['gt_label']])
                             for i in val}
    for bad, match in ((dict(val_size=512), r'val_size=512 must be an int in \[1, 512\)'),
                       (dict(val_size=10, train_size=600), r'train_size=600 must be'),
                       (dict(val_size=10, part='dev'), r"part='dev'; valid: train, val")):
        args = dict(dict(part='val'), **bad)
        with pytest.raises(ValueError, match=match):
            HeldOutSplit(dict(inner), **args)
    with pytest.raises(ValueError, match='inner dataset sets indices'):
        HeldOutSplit(dict(inner, indices=10), part='val', val_size=10)


# --- through tools/train.py and tools/dynakd.py on the small IDX data ------------------------
TINY = '''
_base_ = ['{root}/configs/dynakd/fmnist/split.py']
split = dict(val_size=64, seed=0)
tiny = dict(type='ImageClassifier', data_preprocessor={{{{_base_.data_preprocessor}}}},
            backbone=dict(type='resnet8', num_classes=10, in_channels=1, width_mult=0.25))
model = dict(
    type='Distiller', student=tiny,
    teachers=[dict(name='t{{}}'.format(i), teacher=dict(tiny)) for i in range(3)],
    pool=dict(mode='sample'), student_loss_weight=0.1,
    distill_terms=[dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0)])
train_dataloader = dict(batch_size=16, dataset=dict(train_size=64, val_size=64,
                        dataset=dict(data_root='{data}')))
val_dataloader = dict(dataset=dict(val_size=64, dataset=dict(data_root='{data}')))
test_dataloader = dict(dataset=dict(data_root='{data}'))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=2, eta_min=0.0)]
train_cfg = dict(max_epochs=2)
default_hooks = dict(checkpoint=dict(max_keep_ckpts=5), logger=dict(interval=1))
search_hook = dict(type='DynaKDSearchHook', batch_size=16, theta_lr=0.2,
                   dataset=dict(type='HeldOutSplit', part='val', val_size=64, seed=0,
                                dataset=dict(type='FashionMNIST', split='train',
                                             data_root='{data}',
                                             pipeline=[dict(type='PackClsInputs')])))
'''


@pytest.fixture
def tiny_config(tmp_path, fmnist_root):
    path = tmp_path / 'tiny_dynakd.py'
    path.write_text(TINY.format(root=ROOT, data=fmnist_root))
    return path


def train(config, work_dir, *options):
    cmd = [sys.executable, 'tools/train.py', str(config), '--work-dir', str(work_dir)]
    if options:
        cmd += ['--cfg-options', *options]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_a_resumed_search_restores_theta_exactly(tiny_config, tmp_path):
    config = tmp_path / 'search.py'
    config.write_text(tiny_config.read_text() + '\ncustom_hooks = [search_hook]\n')
    whole = tmp_path / 'whole'
    train(config, whole)
    ckpt1 = torch.load(whole / 'epoch_1.pth', weights_only=False)
    ckpt2 = torch.load(whole / 'epoch_2.pth', weights_only=False)
    with open(whole / 'theta.json') as f:
        history = json.load(f)['history']
    assert len(history) == 2 and 'dynakd' in ckpt1
    # theta moved, and the checkpoint holds exactly what was logged after epoch 1
    theta1 = ckpt1['state_dict']['pool.theta_logits']
    assert not torch.allclose(theta1, torch.zeros(3))
    assert list(theta1.softmax(0).tolist()) == pytest.approx(
        list(history[0]['theta'].values()), abs=1e-6)
    # resume in a new process from epoch 1: theta, its optimizer and the student continue
    # exactly as in the uninterrupted run
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    shutil.copy(whole / 'epoch_1.pth', resumed / 'epoch_1.pth')
    proc = subprocess.run([sys.executable, 'tools/train.py', str(config), '--work-dir',
                           str(resumed), '--resume', str(resumed / 'epoch_1.pth')],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = torch.load(resumed / 'epoch_2.pth', weights_only=False)
    assert torch.equal(again['state_dict']['pool.theta_logits'],
                       ckpt2['state_dict']['pool.theta_logits'])
    for key, value in ckpt2['state_dict'].items():
        assert torch.equal(again['state_dict'][key], value), key
    assert again['dynakd']['history'] == ckpt2['dynakd']['history']
    adam, adam_again = ckpt2['dynakd']['optimizer'], again['dynakd']['optimizer']
    assert torch.equal(adam['state'][0]['exp_avg'], adam_again['state'][0]['exp_avg'])


def load_tool():
    spec = importlib.util.spec_from_file_location('dynakd_tool',
                                                  osp.join(ROOT, 'tools', 'dynakd.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_candidates_derived_from_theta():
    tool = load_tool()
    theta = dict(a=0.5, b=0.3, c=0.2)
    out = dict(tool.derive_candidates(theta, [
        'learned', dict(type='sharpened', temperature=0.5), 'argmax', 'uniform',
        dict(type='topk', k=2), dict(type='sharpened', temperature=1.0)]))
    assert list(out) == ['learned', 'sharpened_T0.5', 'argmax_a', 'uniform', 'top2']
    assert out['sharpened_T0.5'] == pytest.approx(dict(a=25 / 38, b=9 / 38, c=4 / 38))
    assert out['argmax_a'] == dict(a=1.0, b=0.0, c=0.0)
    assert out['top2'] == pytest.approx(dict(a=0.625, b=0.375, c=0.0))
    assert out['uniform'] == pytest.approx(dict(a=1 / 3, b=1 / 3, c=1 / 3))
    with pytest.raises(ValueError, match=r"unknown type 'best'; valid: learned, uniform"):
        tool.derive_candidates(theta, ['best'])
    with pytest.raises(KeyError, match=r"'sharpened' needs temperature"):
        tool.derive_candidates(theta, [dict(type='sharpened')])


def test_the_driver_searches_evaluates_and_writes_the_best_config(tiny_config, tmp_path):
    config = tmp_path / 'dynakd.py'
    config.write_text(tiny_config.read_text() + '\ntrain_cfg = dict(max_epochs=1)\n'
                      "dynakd = dict(search=search_hook, candidates=['learned', 'argmax'])\n")
    work = tmp_path / 'work'
    proc = subprocess.run([sys.executable, 'tools/dynakd.py', str(config), '--work-dir',
                           str(work)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(work / 'dynakd_results.json') as f:
        summary = json.load(f)
    with open(work / 'search' / 'theta.json') as f:
        theta = json.load(f)['theta']
    assert summary['theta'] == theta
    names = [row['name'] for row in summary['candidates']]
    assert names[0] == 'learned' and names[1].startswith('argmax_')
    best = [row for row in summary['candidates'] if row['name'] == summary['best']][0]
    assert best['value'] == max(row['value'] for row in summary['candidates'])
    # the candidates are ordinary configs; the best one is re-runnable as it is
    best_cfg = Config.fromfile(str(work / 'best_config.py'))
    assert 'dynakd' not in best_cfg and best_cfg.model.pool.mode == 'sample'
    assert dict(best_cfg.model.pool.theta) == pytest.approx(best['theta'])
    assert not any(h['type'] == 'DynaKDSearchHook' for h in best_cfg.custom_hooks)
    learned = Config.fromfile(str(work / 'candidates' / 'learned' / 'config.py'))
    assert dict(learned.model.pool.theta) == pytest.approx(theta, abs=1e-5)
    # a second call finds every stage done and trains nothing
    again = subprocess.run([sys.executable, 'tools/dynakd.py', str(config), '--work-dir',
                            str(work)], cwd=ROOT, capture_output=True, text=True,
                           timeout=300, env=ENV)
    assert again.returncode == 0 and json.loads(
        (work / 'dynakd_results.json').read_text())['best'] == summary['best']


# --- the shipped configs ---------------------------------------------------------------------
POOL_CONFIGS = [f'configs/dynakd/{data}/{name}.py' for data in ('fmnist', 'cifar100')
                for name in ('pool_mean', 'pool_sum', 'pool_sample', 'dynakd')]


@pytest.mark.parametrize('config', POOL_CONFIGS)
def test_shipped_pool_configs_build_and_take_a_step(config):
    from kdzoo.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, config))
    train, val = cfg.train_dataloader.dataset, cfg.val_dataloader.dataset
    # selection data comes from the training set, disjoint from the training part
    assert train.type == val.type == 'HeldOutSplit'
    assert (train.part, val.part) == ('train', 'val')
    assert (train.val_size, train.seed) == (val.val_size, val.seed)
    assert train.dataset.split == val.dataset.split == 'train'
    assert cfg.test_dataloader.dataset.split == 'test'
    if 'dynakd' in cfg:
        assert cfg.dynakd.search.dataset == val
    for member in cfg.model.teachers:  # no trained weights here: random members
        member.teacher_checkpoint = None
    model = MODELS.build(cfg.model)
    model.train()
    shape = (1, 28, 28) if 'fmnist' in config else (3, 32, 32)
    num_classes = 10 if 'fmnist' in config else 100
    data = model.data_preprocessor(dict(
        inputs=torch.randint(0, 256, (2, *shape), dtype=torch.uint8),
        data_samples=dict(gt_label=torch.randint(0, num_classes, (2,)))), True)
    losses = model(**data, mode='loss')
    mode = cfg.model.pool.mode
    assert len([k for k in losses if k.startswith('loss_kd0')]) == \
        (len(cfg.model.teachers) if mode == 'sum' else 1)
    assert all(torch.isfinite(v) for v in losses.values())
