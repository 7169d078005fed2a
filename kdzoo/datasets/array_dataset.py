"""The in-memory array dataset base of Fashion-MNIST and CIFAR.

Images are kept in one ``(N, H, W, C)`` uint8 array; ``data_list`` only holds labels and
row numbers, and :meth:`ArrayImageDataset.get_data_info` attaches a copy of the image, so
MMEngine's serialisation stays small and worker processes share the array.
"""
from typing import List, Optional, Tuple

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.dataset.base_dataset import force_full_init

from .seeding import SeededSamplesMixin


class ArrayImageDataset(SeededSamplesMixin, BaseDataset):
    """A :class:`~mmengine.dataset.BaseDataset` whose images live in one numpy array.

    Subclasses implement :meth:`load_arrays` returning ``(images, labels)`` with images
    ``(N, H, W, C)`` uint8 and labels ``(N,)`` ints. Every data info then holds ``img``
    (an ``(H, W, C)`` uint8 copy, ``C == 1`` for grey images) and ``gt_label`` (int).
    ``indices`` (an int or a sequence) selects a subset, as in ``BaseDataset``. With a
    :class:`~kdzoo.datasets.SeededSampler`, each sample's pipeline is seeded per (run seed,
    epoch, index) (:mod:`kdzoo.datasets.seeding`).
    """

    def __init__(self, **kwargs):
        self._images: Optional[np.ndarray] = None
        super().__init__(**kwargs)

    def load_arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError  # abstract

    def load_data_list(self) -> List[dict]:
        images, labels = self.load_arrays()
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f'{type(self).__name__}: expected (N, H, W, C) uint8 images, '
                             f'got {images.shape} {images.dtype}')
        if len(images) != len(labels):
            raise ValueError(f'{type(self).__name__}: {len(images)} images but '
                             f'{len(labels)} labels')
        self._images = images
        return [dict(gt_label=int(label), img_idx=i)
                for i, label in enumerate(np.asarray(labels).tolist())]

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        info['img'] = self._images[info.pop('img_idx')].copy()
        return info

    @force_full_init
    def get_gt_labels(self) -> np.ndarray:
        """Labels of all samples (of the subset, if ``indices`` was given), as int64."""
        labels = []
        for i in range(len(self)):
            info = BaseDataset.get_data_info(self, i)
            labels.append(info['gt_label'])
        return np.asarray(labels, dtype=np.int64)


__all__ = ['ArrayImageDataset']
