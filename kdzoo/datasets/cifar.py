"""CIFAR-10 / CIFAR-100 read from torchvision's on-disk layout (the python pickles).

Layouts (as unpacked from the official ``cifar-*-python.tar.gz`` archives)::

    cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}   # b'data', b'labels'
    cifar-100-python/{train, test, meta}                              # b'data', b'fine_labels'

``b'data'`` is ``(N, 3072)`` uint8, each row the 32x32 image in CHW order (1024 red,
1024 green, 1024 blue values, row-major). Images are returned as ``(32, 32, 3)`` RGB
uint8. The pickles are loaded with :mod:`pickle`, so only use files you trust.
No download is attempted.
"""
import os.path as osp
import pickle
from typing import Optional, Tuple

import numpy as np

from kdzoo.registry import DATASETS
from .array_dataset import ArrayImageDataset

CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                   'ship', 'truck')

CIFAR100_CLASSES = (
    'apple', 'aquarium_fish', 'baby', 'bear', 'beaver', 'bed', 'bee', 'beetle', 'bicycle',
    'bottle', 'bowl', 'boy', 'bridge', 'bus', 'butterfly', 'camel', 'can', 'castle',
    'caterpillar', 'cattle', 'chair', 'chimpanzee', 'clock', 'cloud', 'cockroach', 'couch',
    'crab', 'crocodile', 'cup', 'dinosaur', 'dolphin', 'elephant', 'flatfish', 'forest',
    'fox', 'girl', 'hamster', 'house', 'kangaroo', 'keyboard', 'lamp', 'lawn_mower',
    'leopard', 'lion', 'lizard', 'lobster', 'man', 'maple_tree', 'motorcycle', 'mountain',
    'mouse', 'mushroom', 'oak_tree', 'orange', 'orchid', 'otter', 'palm_tree', 'pear',
    'pickup_truck', 'pine_tree', 'plain', 'plate', 'poppy', 'porcupine', 'possum', 'rabbit',
    'raccoon', 'ray', 'road', 'rocket', 'rose', 'sea', 'seal', 'shark', 'shrew', 'skunk',
    'skyscraper', 'snail', 'snake', 'spider', 'squirrel', 'streetcar', 'sunflower',
    'sweet_pepper', 'table', 'tank', 'telephone', 'television', 'tiger', 'tractor', 'train',
    'trout', 'tulip', 'turtle', 'wardrobe', 'whale', 'willow_tree', 'wolf', 'woman', 'worm')


def _load_pickle(path: str) -> dict:
    with open(path, 'rb') as f:
        return pickle.load(f, encoding='bytes')


def _get(entry: dict, key: str):
    """Read ``key`` from a CIFAR pickle dict whose keys may be bytes or str."""
    if key.encode() in entry:
        return entry[key.encode()]
    return entry[key]


class _CIFARBase(ArrayImageDataset):
    """Shared loading for CIFAR-10 and CIFAR-100; see the module docstring."""

    base_folder: str = ''
    files: dict = {}
    label_key: str = ''
    dataset_name: str = ''

    def __init__(self, split: str = 'train', data_root: Optional[str] = None, **kwargs):
        if split not in self.files:
            raise ValueError(f'{type(self).__name__}: split must be one of '
                             f'{sorted(self.files)}, got {split!r}')
        self.split = split
        if data_root is None:
            data_root = osp.join('data', self.base_folder)
        super().__init__(data_root=data_root, **kwargs)

    def resolve_folder(self) -> str:
        """``data_root`` itself, or ``data_root/<base_folder>``: whichever holds the files."""
        names = self.files[self.split]
        candidates = [self.data_root, osp.join(self.data_root, self.base_folder)]
        for folder in candidates:
            if all(osp.isfile(osp.join(folder, n)) for n in names):
                return folder
        tried = [osp.join(folder, n) for folder in candidates for n in names]
        raise FileNotFoundError(
            f'{self.dataset_name} {self.split} split not found under data_root='
            f'{self.data_root!r}. Looked for:\n  ' + '\n  '.join(tried) +
            f'\nNo download is attempted: unpack {self.dataset_name} (python version, '
            f'https://www.cs.toronto.edu/~kriz/cifar.html) so that '
            f'<data_root>/{self.base_folder}/ exists, e.g. data/{self.base_folder}, '
            'or copy it from a torchvision download (root/' + self.base_folder + ').')

    def load_arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        folder = self.resolve_folder()
        datas, labels = [], []
        for name in self.files[self.split]:
            path = osp.join(folder, name)
            entry = _load_pickle(path)
            try:
                data = np.asarray(_get(entry, 'data'), dtype=np.uint8)
                label = np.asarray(_get(entry, self.label_key), dtype=np.int64)
            except KeyError as e:
                raise ValueError(f'{path}: not a {self.dataset_name} batch (missing {e})')
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(label):
                raise ValueError(f'{path}: expected (N, 3072) data and N labels, got '
                                 f'{data.shape} and {label.shape}')
            datas.append(data)
            labels.append(label)
        data = np.concatenate(datas) if len(datas) > 1 else datas[0]
        label = np.concatenate(labels) if len(labels) > 1 else labels[0]
        num_classes = len(self.metainfo['classes'])
        if label.size and (label.min() < 0 or label.max() >= num_classes):
            raise ValueError(f'{self.dataset_name}: labels out of range [0, {num_classes})')
        # (N, 3072) CHW rows -> (N, 32, 32, 3) HWC, made contiguous once.
        images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        return images, label


@DATASETS.register_module()
class CIFAR10(_CIFARBase):
    """CIFAR-10 (32x32 RGB, 10 classes) from ``cifar-10-batches-py``.

    Args:
        split (str): ``'train'`` (``data_batch_1..5``, 50k) or ``'test'`` (``test_batch``).
        data_root (str, optional): ``cifar-10-batches-py`` itself or the folder holding it.
            Defaults to ``data/cifar-10-batches-py``.
        **kwargs: Passed to :class:`~mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(classes=CIFAR10_CLASSES)
    base_folder = 'cifar-10-batches-py'
    files = dict(train=[f'data_batch_{i}' for i in range(1, 6)], test=['test_batch'])
    label_key = 'labels'
    dataset_name = 'CIFAR-10'


@DATASETS.register_module()
class CIFAR100(_CIFARBase):
    """CIFAR-100 (32x32 RGB, 100 fine classes) from ``cifar-100-python``.

    Args:
        split (str): ``'train'`` (50k) or ``'test'`` (10k).
        data_root (str, optional): ``cifar-100-python`` itself or the folder holding it.
            Defaults to ``data/cifar-100-python``.
        **kwargs: Passed to :class:`~mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(classes=CIFAR100_CLASSES)
    base_folder = 'cifar-100-python'
    files = dict(train=['train'], test=['test'])
    label_key = 'fine_labels'
    dataset_name = 'CIFAR-100'


__all__ = ['CIFAR10', 'CIFAR100', 'CIFAR10_CLASSES', 'CIFAR100_CLASSES']
