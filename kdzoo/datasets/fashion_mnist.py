"""Fashion-MNIST read from its IDX files.

The whole IDX array is decoded with numpy at once (60k images load in well under a
second) and kept in memory by :class:`~kdzoo.datasets.array_dataset.ArrayImageDataset`.
Decoded files are kept in a per-process cache keyed by (path, modification time, size):
the train split and a validation split carved from it decode the file once, and a search's
warm fork server (:mod:`kdzoo.search.forkserver`) decodes it once for all its trials.
"""
import gzip
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import numpy as np

from kdzoo.registry import DATASETS
from .array_dataset import ArrayImageDataset

FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                         'Shirt', 'Sneaker', 'Bag', 'Ankle boot')

# Searched in this order when ``data_root`` is None.
FASHION_MNIST_ROOTS = ('data/fashion_mnist', 'data/FashionMNIST/raw',
                       '/usr/share/datasets/fashion-mnist')

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049

_SPLIT_PREFIX = {'train': 'train', 'test': 't10k'}


def _open_maybe_gzip(path: str):
    return gzip.open(path, 'rb') if path.endswith('.gz') else open(path, 'rb')


#: Decoded IDX files of this process: (real path, mtime_ns, size, magic) -> read-only array.
_DECODED: Dict[tuple, np.ndarray] = {}


def read_idx(path: str, expected_magic: int, cache: bool = True) -> np.ndarray:
    """Decode a whole IDX file (optionally gzipped) into a read-only uint8 numpy array.

    The header is big-endian: a magic number (``2051`` for images, ``2049`` for labels)
    followed by one int32 per dimension. ``cache``: reuse this process's decoding of the
    same file (same path, modification time and size).
    """
    if not cache:
        return _decode_idx(path, expected_magic)
    stat = os.stat(path)
    key = (osp.realpath(path), stat.st_mtime_ns, stat.st_size, expected_magic)
    if key not in _DECODED:
        array = _decode_idx(path, expected_magic)
        array.flags.writeable = False
        if len(_DECODED) >= 16:  # a bound for long-lived processes
            _DECODED.clear()
        _DECODED[key] = array
    return _DECODED[key]


def _decode_idx(path: str, expected_magic: int) -> np.ndarray:
    with _open_maybe_gzip(path) as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f'{path} is not an IDX file (only {len(buf)} bytes)')
    magic = int(np.frombuffer(buf, dtype='>i4', count=1)[0])
    if magic != expected_magic:
        raise ValueError(f'{path}: bad IDX magic number {magic}, expected {expected_magic} '
                         f'({"images" if expected_magic == IDX_IMAGES_MAGIC else "labels"}); '
                         'is this the right file, or a corrupt download?')
    ndim = magic & 0xFF
    if len(buf) < 4 + 4 * ndim:
        raise ValueError(f'{path}: truncated IDX header')
    shape = tuple(int(d) for d in np.frombuffer(buf, dtype='>i4', count=ndim, offset=4))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape))
    if len(buf) - offset != expected:
        raise ValueError(f'{path}: header says shape {shape} ({expected} bytes) but the '
                         f'file holds {len(buf) - offset} data bytes')
    return np.frombuffer(buf, dtype=np.uint8, offset=offset).reshape(shape)


@DATASETS.register_module()
class FashionMNIST(ArrayImageDataset):
    """Fashion-MNIST (28x28 grey images, 10 classes) read from the original IDX files.

    Args:
        split (str): ``'train'`` (60k images) or ``'test'`` (10k images).
        data_root (str, optional): Folder with ``train-images-idx3-ubyte``,
            ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
            ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``); its ``raw`` and
            ``FashionMNIST/raw`` sub-folders are tried too. ``None`` searches
            ``data/fashion_mnist``, ``data/FashionMNIST/raw`` (torchvision's layout) and
            ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``).
        **kwargs: Passed to :class:`~mmengine.dataset.BaseDataset` (``pipeline``,
            ``indices``, ``test_mode``, ``lazy_init``, ...).

    Each sample's ``img`` is ``(28, 28, 1)`` uint8 and ``gt_label`` an int.
    """

    METAINFO = dict(classes=FASHION_MNIST_CLASSES)

    def __init__(self, split: str = 'train', data_root: Optional[str] = None, **kwargs):
        if split not in _SPLIT_PREFIX:
            raise ValueError(f"FashionMNIST: split must be 'train' or 'test', got {split!r}")
        self.split = split
        self.search_root = data_root
        super().__init__(data_root=data_root or '', **kwargs)

    @staticmethod
    def candidate_dirs(data_root: Optional[str]) -> List[str]:
        if data_root is None:
            return list(FASHION_MNIST_ROOTS)
        return [data_root, osp.join(data_root, 'raw'), osp.join(data_root, 'FashionMNIST', 'raw')]

    def find_files(self) -> Tuple[str, str]:
        prefix = _SPLIT_PREFIX[self.split]
        names = (f'{prefix}-images-idx3-ubyte', f'{prefix}-labels-idx1-ubyte')
        tried = []
        for folder in self.candidate_dirs(self.search_root):
            found = []
            for name in names:
                for candidate in (osp.join(folder, name), osp.join(folder, name + '.gz')):
                    tried.append(candidate)
                    if osp.isfile(candidate):
                        found.append(candidate)
                        break
            if len(found) == 2:
                return found[0], found[1]
        raise FileNotFoundError(
            f'Fashion-MNIST {self.split} split not found. Tried:\n  ' + '\n  '.join(tried) +
            '\nGet the data with `apt-get install dataset-fashion-mnist` (installs '
            '/usr/share/datasets/fashion-mnist), or put the four IDX files from '
            'https://github.com/zalandoresearch/fashion-mnist (gzipped or not) in '
            'data/fashion_mnist, or pass data_root=<folder>.')

    @classmethod
    def warm_decode_cache(cls, split: str = 'train', data_root: Optional[str] = None,
                          **ignored) -> List[str]:
        """Decode the files of ``split`` into this process's cache (the fork server of a
        search calls it before forking its trials); returns their paths."""
        dataset = cls.__new__(cls)
        dataset.split, dataset.search_root = split, data_root
        paths = dataset.find_files()
        read_idx(paths[0], IDX_IMAGES_MAGIC)
        read_idx(paths[1], IDX_LABELS_MAGIC)
        return list(paths)

    def load_arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        img_path, label_path = self.find_files()
        images = read_idx(img_path, IDX_IMAGES_MAGIC)
        labels = read_idx(label_path, IDX_LABELS_MAGIC)
        if images.ndim != 3:
            raise ValueError(f'{img_path}: expected a 3-D image array, got shape {images.shape}')
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f'{label_path}: {labels.shape} labels for {len(images)} images')
        if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
            raise ValueError(f'{label_path}: label {labels.max()} out of range')
        return images, labels


__all__ = ['FashionMNIST', 'read_idx', 'FASHION_MNIST_CLASSES', 'FASHION_MNIST_ROOTS']
