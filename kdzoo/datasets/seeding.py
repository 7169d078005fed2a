"""Replayable data augmentation: every sample's random pipeline steps draw from RNGs seeded
by ``(run seed, epoch, sample index, replay)``.

Why: MMEngine seeds each data worker once (``seed + worker id``) and a resumed run restarts
the workers, so a run killed after epoch ``E`` and resumed with ``--resume`` used to crop
and flip epoch ``E + 1`` like epoch 1 and did not end with the weights of an uninterrupted
run. Seeding per sample makes the augmentation of ``(epoch, index)`` a pure function of the
run seed, whatever the number of workers, processes or restarts:

- :class:`SeededSampler` (``DefaultSampler`` plus seeds; :class:`SeededInfiniteSampler` for
  iteration-based loops) yields :class:`SeededIndex` objects: ints that carry the run seed
  and the epoch. Being the sampler's output, they travel through the DataLoader's index
  queue into persistent workers, which a hook setting an attribute on the dataset cannot
  reach.
- kdzoo's datasets (:class:`SeededSamplesMixin`; :class:`SeededDataset` wraps any other
  dataset, e.g. mmdet's or mmseg's) run ``__getitem__`` inside :func:`seeded_rngs`
  ``(sample_seed(seed, epoch, index))``: Python's ``random``, numpy's global RNG and torch's
  CPU RNG are seeded for the sample, so every pipeline step (kdzoo's, mmcv's, mmdet's,
  torchvision's) is covered; in the main process (``num_workers=0``) their previous states
  are restored afterwards, so the model's RNG streams do not depend on data loading.

The main process's own draws (dropout, a sampled teacher) are made resumable by
:class:`kdzoo.engine.StepSeedHook`, which seeds them per iteration with :func:`step_seed`.
The base runtime config fixes ``randomness.seed=0``. With ``seed=None`` MMEngine draws a
new seed in every process and builds the sampler with it before a resumed run reads the
checkpoint's seed; ``StepSeedHook`` hands that seed to a :class:`SeededSampler`, while an
iteration-based run (:class:`SeededInfiniteSampler`, whose loader starts at build time)
needs a fixed seed to resume exactly.

A plain ``int`` index (another sampler, direct ``dataset[i]``, or MMEngine's
``RepeatDataset`` / ``ConcatDataset``, which pass plain ints inwards: wrap those in
:class:`SeededDataset`) runs the pipeline on the RNGs as they are, as before;
``StepSeedHook`` warns when only one of the train sampler and dataset is seeded.

:func:`sample_seed` is the public contract of replay: the ``k``-th extra view of a sample
(a teacher's own crop, a teacher store's ``k``-th stored view) is ``replay=k``, and
``dataset.get_seeded(index, seed, epoch, replay)`` rebuilds it exactly.
"""
import contextlib
import hashlib
import random
import struct
from typing import Iterator

import numpy as np
import torch
from mmengine.dataset import DefaultSampler, InfiniteSampler
from torch.utils.data import get_worker_info

from kdzoo.registry import DATA_SAMPLERS, DATASETS

_UINT64 = 2**64


def _derive(domain: bytes, *values: int) -> int:
    for v in values:
        if not isinstance(v, (int, np.integer)) or not 0 <= int(v) < _UINT64:
            raise ValueError(f'seeds, epochs and indices must be ints in [0, 2**64); got '
                             f'{values}')
    digest = hashlib.blake2b(struct.pack(f'<{len(values)}Q', *map(int, values)),
                             digest_size=8, person=domain).digest()
    return int.from_bytes(digest, 'little')


def sample_seed(seed: int, epoch: int, index: int, replay: int = 0) -> int:
    """The seed of one sample's augmentation: a 64-bit int.

    ``blake2b(<seed, epoch, index, replay as little-endian uint64>, digest_size=8,
    person=b'kdzoo-sample')`` read as a little-endian unsigned int, so it is the same on
    every machine, Python and numpy version.

    Args:
        seed: the run seed (``randomness.seed``; what the sampler received).
        epoch: the epoch (the pass over the data for iteration-based loops), from 0.
        index: the sample's index in the dataset (in the subset when ``indices`` is given).
        replay: which view of the same ``(epoch, index)``: 0 is the training view; ``k > 0``
            are extra, independent views (a teacher's own random crop, a store's k-th view).
    """
    return _derive(b'kdzoo-sample', seed, epoch, index, replay)


def step_seed(seed: int, iteration: int, rank: int = 0) -> int:
    """The seed of the main process's RNGs for one training iteration (see
    :class:`~kdzoo.engine.StepSeedHook`): ``blake2b`` of ``(seed, iteration, rank)`` with
    ``person=b'kdzoo-step'``, as in :func:`sample_seed`."""
    return _derive(b'kdzoo-step', seed, iteration, rank)


def seed_rngs(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch's CPU RNG from one 64-bit
    ``seed`` (numpy gets both 32-bit halves, so no bits are dropped)."""
    seed = int(seed) % _UINT64
    random.seed(seed)
    np.random.seed([seed & 0xFFFFFFFF, seed >> 32])
    torch.default_generator.manual_seed(seed)


@contextlib.contextmanager
def seeded_rngs(seed: int, restore: bool = True):
    """Run the block with Python's ``random``, numpy's global RNG and torch's CPU RNG seeded
    by :func:`seed_rngs` (``seed``); with ``restore`` (the default) put their previous states
    back afterwards, also on an error. CUDA RNGs are not touched: pipelines run on the CPU.

    Saving and restoring numpy's state (624 words) is most of the cost; the datasets skip
    it inside DataLoader workers, where nothing else draws from these RNGs
    (:func:`_restore_here`).
    """
    if not restore:
        seed_rngs(seed)
        yield
        return
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        seed_rngs(seed)
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def _restore_here() -> bool:
    """Restore the RNG states after a sample unless in a DataLoader worker process (whose
    RNGs only ever serve the seeded samples)."""
    return get_worker_info() is None


class SeededIndex(int):
    """A dataset index that also carries the run ``seed`` and the ``epoch`` it is drawn in
    (the sampler's output; see the module doc). It is an ``int`` everywhere else."""

    def __new__(cls, index: int, seed: int, epoch: int):
        obj = super().__new__(cls, index)
        obj.seed = int(seed)
        obj.epoch = int(epoch)
        return obj

    def __reduce__(self):
        return SeededIndex, (int(self), self.seed, self.epoch)

    def __repr__(self) -> str:
        return f'SeededIndex({int(self)}, seed={self.seed}, epoch={self.epoch})'

    @property
    def sample_seed(self) -> int:
        return sample_seed(self.seed, self.epoch, int(self))


def _check_seed(seed, sampler: str) -> int:
    if seed is None:
        raise ValueError(f'{sampler} needs a seed (the Runner passes randomness.seed)')
    return int(seed)


@DATA_SAMPLERS.register_module()
class SeededSampler(DefaultSampler):
    """MMEngine's ``DefaultSampler`` (same order, same sharding over ranks, ``set_epoch``
    from ``DistSamplerSeedHook``) yielding :class:`SeededIndex` objects, so kdzoo's datasets
    augment sample ``i`` of epoch ``e`` with :func:`sample_seed` ``(seed, e, i)``.

    ``seed`` is the Runner's ``randomness.seed`` (MMEngine passes it); with
    ``randomness.diff_rank_seed=True`` MMEngine passes ``None`` and the sampler draws one
    shared seed, as ``DefaultSampler`` does.
    """

    def __iter__(self) -> Iterator[int]:
        seed, epoch = _check_seed(self.seed, 'SeededSampler'), int(self.epoch)
        return (SeededIndex(i, seed, epoch) for i in super().__iter__())


@DATA_SAMPLERS.register_module()
class SeededInfiniteSampler(InfiniteSampler):
    """MMEngine's ``InfiniteSampler`` (iteration-based loops) yielding :class:`SeededIndex`
    objects whose ``epoch`` is the pass over the data (0, 1, ...). MMEngine resumes an
    iteration-based run by drawing the batches already trained again, so the passes and
    their augmentation line up with an uninterrupted run."""

    def _infinite_indices(self) -> Iterator[int]:
        seed = _check_seed(self.seed, 'SeededInfiniteSampler')
        g = torch.Generator()
        g.manual_seed(seed)
        epoch = 0
        while True:
            order = (torch.randperm(self.size, generator=g) if self.shuffle
                     else torch.arange(self.size)).tolist()
            for i in order:
                yield SeededIndex(i, seed, epoch)
            epoch += 1


class SeededSamplesMixin:
    """Makes a dataset's ``__getitem__`` run under :func:`seeded_rngs` when the index is a
    :class:`SeededIndex` (put it before the dataset class in the bases)."""

    def __getitem__(self, idx):
        seed = getattr(idx, 'sample_seed', None)
        if seed is None:
            return super().__getitem__(idx)
        with seeded_rngs(seed, restore=_restore_here()):
            return super().__getitem__(int(idx))

    def get_seeded(self, index: int, seed: int, epoch: int, replay: int = 0):
        """Sample ``index`` as augmented in ``epoch`` of a run seeded ``seed``
        (``replay=k``: its k-th extra view; see :func:`sample_seed`)."""
        with seeded_rngs(sample_seed(seed, epoch, index, replay)):
            return super().__getitem__(int(index))


class DatasetWrapper:
    """A dataset around ``dataset`` (built from a dict if needed): its length, and every
    attribute it does not define itself (``metainfo``, ...), are the wrapped dataset's."""

    def __init__(self, dataset):
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        if name == 'dataset':  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


@DATASETS.register_module()
class SeededDataset(DatasetWrapper):
    """Wrap any dataset (mmdet's, mmseg's, ...) so that its pipeline is seeded per sample,
    as :class:`SeededSamplesMixin` does for kdzoo's datasets::

        train_dataloader = dict(sampler=dict(type='SeededSampler'),
                                dataset=dict(type='SeededDataset',
                                             dataset=dict(type='mmdet.CocoDataset', ...)))

    ``metainfo`` and every other attribute are the wrapped dataset's.
    """

    def __getitem__(self, idx):
        seed = getattr(idx, 'sample_seed', None)
        if seed is None:
            return self.dataset[idx]
        with seeded_rngs(seed, restore=_restore_here()):
            return self.dataset[int(idx)]

    def get_seeded(self, index: int, seed: int, epoch: int, replay: int = 0):
        """See :meth:`SeededSamplesMixin.get_seeded`."""
        with seeded_rngs(sample_seed(seed, epoch, index, replay)):
            return self.dataset[int(index)]


__all__ = ['sample_seed', 'step_seed', 'seed_rngs', 'seeded_rngs', 'SeededIndex',
           'DatasetWrapper', 'SeededSampler', 'SeededInfiniteSampler', 'SeededSamplesMixin',
           'SeededDataset']
