"""Shared fixtures: small data sets written in their real on-disk formats."""
import gzip
import os.path as osp
import struct
import sys

import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Two cores are shared by the test process and its data workers.
torch.set_num_threads(1)


def write_idx(path: str, array: np.ndarray, gz: bool = True) -> None:
    """Write ``array`` (uint8) as an IDX file, like Fashion-MNIST's."""
    magic = 2049 if array.ndim == 1 else 2051
    header = struct.pack('>I', magic) + b''.join(struct.pack('>I', d) for d in array.shape)
    opener = gzip.open if gz else open
    with opener(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_pattern_images(n: int, seed: int, size: int = 28, num_classes: int = 10):
    """Grey images whose class is the period (2 + class) of bright horizontal stripes, a
    pattern that random crops and flips do not change."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
    rows = np.arange(size)
    for i, label in enumerate(labels):
        phase = rng.integers(0, 2 + int(label))
        images[i, (rows + phase) % (2 + int(label)) == 0, :] = 220
    return images, labels


@pytest.fixture(scope='session')
def fmnist_root(tmp_path_factory):
    """A small Fashion-MNIST in the real IDX layout: 512 train and 256 test images."""
    root = tmp_path_factory.mktemp('fashion_mnist')
    for prefix, n, seed in (('train', 512, 0), ('t10k', 256, 1)):
        images, labels = make_pattern_images(n, seed)
        write_idx(osp.join(root, f'{prefix}-images-idx3-ubyte.gz'), images)
        write_idx(osp.join(root, f'{prefix}-labels-idx1-ubyte.gz'), labels)
    return str(root)


@pytest.fixture(autouse=True)
def _chdir_root(monkeypatch):
    """Configs name other configs relative to the repository root."""
    monkeypatch.chdir(ROOT)
