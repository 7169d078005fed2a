"""End to end through the tools: train, student-only checkpoint, test, resume."""
import glob
import json
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def train_cmd(config, work_dir, fmnist_root, *options):
    return [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir),
            '--cfg-options',
            f'train_dataloader.dataset.data_root={fmnist_root}',
            f'val_dataloader.dataset.data_root={fmnist_root}',
            f'test_dataloader.dataset.data_root={fmnist_root}',
            'train_dataloader.dataset.indices=None',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
            'train_dataloader.batch_size=32', 'default_hooks.logger.interval=4',
            *options]


def run(cmd):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def last_val_top1(work_dir):
    scalars = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))[-1]
    with open(scalars) as f:
        rows = [json.loads(line) for line in f]
    return [r['accuracy/top1'] for r in rows if 'accuracy/top1' in r][-1]


@pytest.fixture(scope='module')
def trained(tmp_path_factory, fmnist_root):
    """A teacher (2 epochs) and a KD student (2 epochs) on the small data."""
    work = tmp_path_factory.mktemp('e2e')
    teacher_dir = work / 'teacher'
    run(train_cmd('configs/fashion_mnist/teacher_fmnist.py', teacher_dir, fmnist_root,
                  'train_cfg.max_epochs=2'))
    with open(teacher_dir / 'last_checkpoint') as f:
        teacher_ckpt = f.read().strip()
    kd_dir = work / 'kd'
    run(train_cmd('configs/fashion_mnist/kd_fmnist.py', kd_dir, fmnist_root,
                  'train_cfg.max_epochs=2', f'model.teacher_checkpoint={teacher_ckpt}'))
    return dict(work=work, teacher_ckpt=teacher_ckpt, kd_dir=kd_dir)


def test_student_only_checkpoint_reproduces_logged_accuracy(trained, fmnist_root):
    kd_dir = trained['kd_dir']
    student_ckpt = kd_dir / 'student_latest.pth'
    state = torch.load(student_ckpt, weights_only=False)['state_dict']
    assert state and not any(k.startswith(('teacher', 'student.', 'terms')) for k in state)
    out = kd_dir / 'test.json'
    run([sys.executable, 'tools/test.py', 'configs/fashion_mnist/student_fmnist.py',
         str(student_ckpt), '--work-dir', str(kd_dir / 'test'), '--out', str(out),
         '--cfg-options', f'test_dataloader.dataset.data_root={fmnist_root}',
         'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False'])
    with open(out) as f:
        tested = json.load(f)['accuracy/top1']
    assert tested == pytest.approx(last_val_top1(kd_dir), abs=1e-6)


def test_test_tool_rejects_mismatched_checkpoint(trained, fmnist_root):
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', 'configs/fashion_mnist/student_fmnist.py',
         trained['teacher_ckpt'], '--cfg-options',
         f'test_dataloader.dataset.data_root={fmnist_root}'],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'does not match the model' in proc.stderr


def test_missing_teacher_checkpoint_fails_before_training(tmp_path, fmnist_root):
    proc = subprocess.run(
        train_cmd('configs/fashion_mnist/kd_fmnist.py', tmp_path / 'kd', fmnist_root,
                  'model.teacher_checkpoint=/no/such/teacher.pth'),
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'teacher checkpoint not found: /no/such/teacher.pth' in proc.stderr
    assert 'Epoch(train)' not in proc.stdout + proc.stderr


def final_weights(work_dir, epoch):
    return torch.load(osp.join(work_dir, f'epoch_{epoch}.pth'), weights_only=False)['state_dict']


def kill_after_first_checkpoint(cmd, work_dir):
    """Start ``cmd``; SIGKILL it once epoch 1's checkpoint is complete (``last_checkpoint`` is
    written after it); return the process."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (work_dir / 'last_checkpoint').exists() and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    return proc


@pytest.mark.parametrize('config,extra', [
    ('configs/fashion_mnist/kd_fmnist.py', ()),
    # teaching views cut at two resolutions, and mixup drawn in the main process
    ('configs/funmatch/funmatch_fmnist.py', ('teaching.teacher_size=56',))])
def test_killed_training_resumes_to_the_same_weights(trained, tmp_path, fmnist_root, config,
                                                     extra):
    """The shipped KD config as it is (random crop + flip, persistent workers), and the
    FunMatch config, with two data workers: a run killed (SIGKILL) after epoch 1 and
    resumed with ``--resume`` ends with bitwise the same weights as an uninterrupted run."""
    cfg = Config.fromfile(osp.join(ROOT, config))
    if 'teaching' not in cfg:
        assert {'RandomCropPad', 'mmcv.RandomFlip'} <= {
            step['type'] for step in cfg.train_dataloader.dataset.pipeline}
    assert cfg.train_dataloader.persistent_workers and cfg.randomness.seed is not None
    options = ('train_cfg.max_epochs=3', f'model.teacher_checkpoint={trained["teacher_ckpt"]}',
               'train_dataloader.num_workers=2', 'train_dataloader.persistent_workers=True',
               *extra)
    full_dir, killed_dir = tmp_path / 'full', tmp_path / 'killed'
    run(train_cmd(config, full_dir, fmnist_root, *options))

    proc = kill_after_first_checkpoint(train_cmd(config, killed_dir, fmnist_root, *options),
                                       killed_dir)
    proc.wait()
    assert not (killed_dir / 'epoch_3.pth').exists(), 'training ended before it was killed'

    resumed = run(train_cmd(config, killed_dir, fmnist_root, *options) + ['--resume'])
    assert 'resumed epoch: 1' in resumed.stdout + resumed.stderr
    expected, got = final_weights(full_dir, 3), final_weights(killed_dir, 3)
    assert expected.keys() == got.keys()
    differ = [k for k in expected if not torch.equal(got[k], expected[k])]
    assert not differ, f'{len(differ)} of {len(expected)} tensors differ: {differ[:5]}'


def test_sparse_masks_stay_zero_and_survive_resume(tmp_path, fmnist_root):
    """Sparse training (50 %, growing over the first half): after every optimizer step the
    masked weights are zero, and a run killed after epoch 1 and resumed ends with the
    weights (and the zeros) of an uninterrupted run."""
    config = tmp_path / 'sparse.py'
    config.write_text(
        f"_base_ = ['{ROOT}/configs/fashion_mnist/student_fmnist.py']\n"
        "custom_hooks = [dict(type='SparseTrainingHook', sparsity=0.5, start=0.0, end=0.5,"
        " interval=4)]\n")
    options = ('train_cfg.max_epochs=3', 'param_scheduler.0.T_max=3')
    full_dir, killed_dir = tmp_path / 'full', tmp_path / 'killed'
    run(train_cmd(str(config), full_dir, fmnist_root, *options))
    proc = kill_after_first_checkpoint(
        train_cmd(str(config), killed_dir, fmnist_root, *options), killed_dir)
    proc.wait()
    assert not (killed_dir / 'epoch_3.pth').exists(), 'training ended before it was killed'
    run(train_cmd(str(config), killed_dir, fmnist_root, *options) + ['--resume'])
    for epoch in (1, 2, 3):  # the mask in force at each checkpoint zeroes its weights
        ckpt = torch.load(full_dir / f'epoch_{epoch}.pth', weights_only=False)
        for name, mask in ckpt['sparse_masks']['masks'].items():
            assert (ckpt['state_dict'][name][~mask] == 0).all()
    final = torch.load(full_dir / 'epoch_3.pth', weights_only=False)['sparse_masks']
    assert final['current'] == 0.5
    masks = final['masks']
    assert sum(int((~m).sum()) for m in masks.values()) == \
        sum(int(m.numel() * 0.5) for m in masks.values())
    expected, got = final_weights(full_dir, 3), final_weights(killed_dir, 3)
    differ = [k for k in expected if not torch.equal(got[k], expected[k])]
    assert not differ, f'{len(differ)} of {len(expected)} tensors differ: {differ[:5]}'
