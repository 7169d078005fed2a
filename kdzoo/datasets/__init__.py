"""Datasets and data-pipeline steps; importing this package registers them in kdzoo's
``DATASETS`` and ``TRANSFORMS`` registries (see :mod:`kdzoo.datasets.transforms` for how
configs name mmcv's own steps)."""
from .array_dataset import ArrayImageDataset
from .cifar import CIFAR10, CIFAR100
from .fashion_mnist import FashionMNIST
from .image_folder import ImageFolder
from .transforms import BGR2RGB, PackClsInputs, RandomCropPad, RandomResizedCrop, ResizeShorter

__all__ = [
    'ArrayImageDataset', 'FashionMNIST', 'CIFAR10', 'CIFAR100', 'ImageFolder', 'RandomCropPad',
    'RandomResizedCrop', 'ResizeShorter', 'BGR2RGB', 'PackClsInputs'
]
