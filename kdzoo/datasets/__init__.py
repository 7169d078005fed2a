"""Datasets and data-pipeline steps; importing this package registers them in kdzoo's
``DATASETS``, ``DATA_SAMPLERS`` and ``TRANSFORMS`` registries (see
:mod:`kdzoo.datasets.transforms` for how configs name mmcv's own steps, and
:mod:`kdzoo.datasets.seeding` for the per-sample seeding that makes augmentation
replayable and resumed runs equal to uninterrupted ones)."""
from .array_dataset import ArrayImageDataset
from .cifar import CIFAR10, CIFAR100
from .fashion_mnist import FashionMNIST
from .image_folder import ImageFolder
from .seeding import (SeededDataset, SeededIndex, SeededInfiniteSampler, SeededSampler,
                      SeededSamplesMixin, sample_seed, seed_rngs, seeded_rngs, step_seed)
from .splits import HeldOutSplit, held_out_indices
from .transforms import BGR2RGB, PackClsInputs, RandomCropPad, RandomResizedCrop, ResizeShorter
from .unlabeled import UnlabeledDataset

__all__ = [
    'ArrayImageDataset', 'FashionMNIST', 'CIFAR10', 'CIFAR100', 'ImageFolder', 'RandomCropPad',
    'RandomResizedCrop', 'ResizeShorter', 'BGR2RGB', 'PackClsInputs', 'sample_seed',
    'step_seed', 'seed_rngs', 'seeded_rngs', 'SeededIndex', 'SeededSampler',
    'SeededInfiniteSampler', 'SeededSamplesMixin', 'SeededDataset', 'HeldOutSplit',
    'held_out_indices', 'UnlabeledDataset'
]
