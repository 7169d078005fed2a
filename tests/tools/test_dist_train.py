"""tools/dist_train.sh: two CPU processes (gloo) distil with DDP and save a student."""
import os
import os.path as osp
import subprocess
import sys

import torch

from kdzoo.search.runner import free_port

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_dist_train_two_processes(tmp_path, fmnist_root):
    # Any teacher weights will do: build and save a resnet20.
    from kdzoo.registry import MODELS
    from kdzoo.utils import register_all_modules
    register_all_modules()
    teacher = MODELS.build(dict(type='ImageClassifier',
                                backbone=dict(type='resnet20', num_classes=10, in_channels=1)))
    teacher_ckpt = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=teacher.state_dict()), teacher_ckpt)
    env = dict(os.environ, PATH=osp.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
               PORT=str(free_port()), OMP_NUM_THREADS='1')
    work = tmp_path / 'dist'
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', 'configs/fashion_mnist/kd_fmnist.py', '2',
         '--work-dir', str(work), '--cfg-options', 'env_cfg.dist_cfg.backend=gloo',
         f'model.teacher_checkpoint={teacher_ckpt}', 'train_cfg.max_epochs=1',
         f'train_dataloader.dataset.data_root={fmnist_root}',
         f'val_dataloader.dataset.data_root={fmnist_root}',
         'train_dataloader.dataset.indices=None', 'train_dataloader.batch_size=32',
         'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
         'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log
    # 512 images / (2 ranks x 32) = 8 iterations per epoch
    assert 'Epoch(train) [1][8/8]' in log
    state = torch.load(work / 'student_latest.pth', weights_only=False)['state_dict']
    assert state and not any(k.startswith(('module.', 'teacher', 'student.')) for k in state)
