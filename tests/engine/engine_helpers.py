"""Shared bits of the engine tests: a fake runner and tools/train.py on the small data."""
import logging
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

from mmengine.logging import MessageHub

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def fake_runner(work_dir, hub_name='engine-test', **cfg):
    return SimpleNamespace(work_dir=str(work_dir), iter=0, epoch=0, rank=0, seed=0,
                           logger=logging.getLogger('engine-test'), cfg=cfg or None,
                           message_hub=MessageHub.get_instance(hub_name),
                           train_loop=SimpleNamespace(stop_training=False, max_epochs=5))


def data_options(fmnist_root, indices=64, batch_size=8):
    """Small, quick runs: ``indices`` training images, no data workers."""
    return [f'train_dataloader.dataset.data_root={fmnist_root}',
            f'val_dataloader.dataset.data_root={fmnist_root}',
            f'test_dataloader.dataset.data_root={fmnist_root}',
            f'train_dataloader.dataset.indices={indices}',
            f'train_dataloader.batch_size={batch_size}',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']


def train(config, work_dir, *options, extra=(), env=None):
    """Run tools/train.py; the finished process (not checked)."""
    cmd = [sys.executable, 'tools/train.py', str(config), '--work-dir', str(work_dir),
           *extra, '--cfg-options', *options]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(ENV, **(env or {})))
