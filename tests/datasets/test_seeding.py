"""Per-sample seeding of the data pipeline (kdzoo.datasets.seeding): the augmentation of
(run seed, epoch, index) is the same whatever the workers, restarts or RNG history."""
import pickle
import random

import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from kdzoo.datasets import (FashionMNIST, SeededDataset, SeededIndex, SeededInfiniteSampler,
                            SeededSampler, sample_seed, seeded_rngs, step_seed)

AUGMENT = [dict(type='RandomCropPad', size=28, padding=4),
           dict(type='mmcv.RandomFlip', prob=0.5, direction='horizontal'),
           dict(type='PackClsInputs')]


def test_sample_seed_is_a_fixed_function_of_its_arguments():
    # Pinned: a teacher store replays views by these numbers, across machines and versions.
    assert sample_seed(0, 0, 0) == 10943778485342294251
    assert sample_seed(0, 2, 5) == SeededIndex(5, seed=0, epoch=2).sample_seed
    seeds = {sample_seed(s, e, i, r) for s in (0, 1) for e in (0, 1) for i in (0, 1, 2)
             for r in (0, 1)}
    assert len(seeds) == 24 and all(0 <= s < 2**64 for s in seeds)
    assert step_seed(0, 0) != sample_seed(0, 0, 0)
    with pytest.raises(ValueError, match='ints in'):
        sample_seed(-1, 0, 0)


def test_seeded_rngs_draws_alike_and_restores_the_caller_state():
    def draws():
        return random.random(), np.random.rand(), torch.rand(1).item()

    np.random.seed(1)
    before = np.random.get_state()[1].copy()
    with seeded_rngs(42):
        first = draws()
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    random.seed(7)
    torch.manual_seed(7)
    np.random.seed(7)
    with seeded_rngs(42):
        assert draws() == first
    with seeded_rngs(43):
        assert draws() != first


def test_seeded_index_is_an_int_that_survives_pickling():
    index = SeededIndex(5, seed=3, epoch=2)
    again = pickle.loads(pickle.dumps(index))
    assert again == 5 and isinstance(again, int) and (again.seed, again.epoch) == (3, 2)
    assert [10, 11, 12, 13, 14, 15][index] == 15


def test_seeded_sampler_keeps_default_order_and_carries_seed_and_epoch():
    data = list(range(10))
    default, seeded = DefaultSampler(data, seed=3), SeededSampler(data, seed=3)
    for epoch in (0, 4):
        default.set_epoch(epoch)
        seeded.set_epoch(epoch)
        got = list(seeded)
        assert got == list(default)
        assert {(i.seed, i.epoch) for i in got} == {(3, epoch)}


def test_seeded_infinite_sampler_counts_passes():
    sampler = SeededInfiniteSampler(list(range(4)), seed=1)
    indices = [next(sampler.indices) for _ in range(10)]
    assert [i.epoch for i in indices] == [0] * 4 + [1] * 4 + [2] * 2
    assert sorted(indices[:4]) == sorted(indices[4:8]) == [0, 1, 2, 3]


def _loader(root, num_workers, epoch_sampler='SeededSampler'):
    cfg = dict(batch_size=16, num_workers=num_workers, persistent_workers=num_workers > 0,
               sampler=dict(type=epoch_sampler, shuffle=True),
               collate_fn=dict(type='default_collate'),
               dataset=dict(type='FashionMNIST', split='train', data_root=root,
                            indices=64, pipeline=AUGMENT))
    with DefaultScope.overwrite_default_scope('kdzoo'):
        return Runner.build_dataloader(cfg, seed=0)


def _epoch(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return torch.cat([b['inputs'] for b in loader])


def test_augmentation_depends_only_on_seed_epoch_and_index(fmnist_root):
    """Persistent workers that went through epoch 0 give epoch 1 exactly as a fresh loader
    (a resumed run) and as the main process do; epochs differ from one another."""
    workers = _loader(fmnist_root, num_workers=2)
    epoch0, epoch1 = _epoch(workers, 0), _epoch(workers, 1)
    resumed = _loader(fmnist_root, num_workers=2)
    assert torch.equal(_epoch(resumed, 1), epoch1)
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    assert torch.equal(_epoch(_loader(fmnist_root, num_workers=0), 1), epoch1)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # main RNG untouched

    order1 = [int(i) for i in resumed.sampler]  # the sampler is at epoch 1
    resumed.sampler.set_epoch(0)
    order0 = [int(i) for i in resumed.sampler]
    same_image = {i: k for k, i in enumerate(order0)}
    moved = sum(not torch.equal(epoch0[same_image[i]], epoch1[k]) for k, i in enumerate(order1))
    assert moved > len(order1) // 2, 'the augmentation should change between epochs'

    # a single sample, rebuilt from its numbers (the teacher store's replay)
    dataset = resumed.dataset
    assert torch.equal(dataset.get_seeded(order1[3], seed=0, epoch=1)['inputs'], epoch1[3])
    replays = [dataset.get_seeded(order1[3], seed=0, epoch=1, replay=r)['inputs']
               for r in range(1, 6)]
    assert any(not torch.equal(r, epoch1[3]) for r in replays)


def test_the_old_default_sampler_does_not_reproduce(fmnist_root):
    """Why the seeded sampler exists: with DefaultSampler a restarted loader (a resumed run)
    augments epoch 1 differently from persistent workers that went through epoch 0."""
    workers = _loader(fmnist_root, num_workers=2, epoch_sampler='DefaultSampler')
    _epoch(workers, 0)
    epoch1 = _epoch(workers, 1)
    restarted = _loader(fmnist_root, num_workers=2, epoch_sampler='DefaultSampler')
    assert not torch.equal(_epoch(restarted, 1), epoch1)


def test_seeded_dataset_wraps_any_dataset(fmnist_root):
    inner = dict(type='FashionMNIST', split='train', data_root=fmnist_root, indices=8,
                 pipeline=AUGMENT)
    with DefaultScope.overwrite_default_scope('kdzoo'):
        wrapped = SeededDataset(inner)
        plain = FashionMNIST(split='train', data_root=fmnist_root, indices=8,
                             pipeline=AUGMENT)
    assert len(wrapped) == 8 and wrapped.metainfo == plain.metainfo
    index = SeededIndex(3, seed=0, epoch=2)
    assert torch.equal(wrapped[index]['inputs'], plain[index]['inputs'])
    assert torch.equal(wrapped.get_seeded(3, 0, 2)['inputs'], plain[index]['inputs'])
