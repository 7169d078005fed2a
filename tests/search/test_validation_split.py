"""Searches select on a validation split carved from the training data: the split itself
(seeded, stratified, disjoint) and every shipped search config."""
import glob
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config

from kdzoo.datasets import FashionMNIST, HeldOutSplit, held_out_indices
from kdzoo.search import load_search
from kdzoo.search.settings import apply_validation

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_a_stratified_split_keeps_every_class_share():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])  # 100 items, unbalanced
    train, val = held_out_indices(100, 20, seed=3, labels=labels)
    assert not set(train) & set(val) and len(train) + len(val) == 100
    assert np.bincount(labels[val], minlength=4).tolist() == [10, 6, 3, 1]
    assert (train, val) == held_out_indices(100, 20, seed=3, labels=labels)
    assert val != held_out_indices(100, 20, seed=4, labels=labels)[1]
    assert len(held_out_indices(100, 0.25, seed=0)[1]) == 25  # a fraction
    with pytest.raises(ValueError, match='fraction'):
        held_out_indices(100, 100)


def test_the_two_parts_of_a_real_dataset_are_disjoint(fmnist_root):
    inner = dict(type='kdzoo.FashionMNIST', split='train', data_root=fmnist_root)
    val = HeldOutSplit(dict(inner), part='val', val_size=0.1, seed=0, stratified=True)
    train = HeldOutSplit(dict(inner), part='train', val_size=0.1, seed=0, stratified=True,
                         train_size=64)
    full = FashionMNIST(split='train', data_root=fmnist_root)
    train_idx, val_idx = held_out_indices(len(full), 51, 0, 64, full.get_gt_labels())
    assert len(val) == 51 and len(train) == 64 and not set(train_idx) & set(val_idx)
    for part, idx in ((val, val_idx), (train, train_idx)):
        for i in (0, len(idx) - 1):  # the parts hold exactly those items of the train split
            assert np.array_equal(part.get_data_info(i)['img'],
                                  full.get_data_info(idx[i])['img'])
    assert val.get_gt_labels().tolist() == full.get_gt_labels()[val_idx].tolist()


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(ROOT, 'configs', 'search', '*.py'))),
                         ids=lambda p: osp.basename(p)[:-3])
def test_no_shipped_search_config_selects_on_the_test_split(path):
    cfg = Config.fromfile(path)
    settings, _ = load_search(cfg)
    assert settings['validation'], 'a shipped search config turned the validation split off'
    raw = cfg.to_dict()
    raw.pop('search')
    trial, proxy = apply_validation(Config(raw), settings['validation'], settings['proxy'])
    val, train = trial.val_dataloader.dataset, trial.train_dataloader.dataset
    assert val.type == train.type == 'kdzoo.HeldOutSplit'
    assert (val.part, train.part) == ('val', 'train')
    assert val.seed == train.seed and val.val_size == train.val_size
    assert 'train_indices' not in proxy
    # the validation part is cut from the training data set (any kind: FashionMNIST's
    # split='train', a Cityscapes-format data_prefix of 'train', ...)
    data_keys = lambda d: {k: v for k, v in d.items()  # noqa: E731
                           if k not in ('pipeline', 'test_mode', 'indices')}
    assert data_keys(val.dataset) == data_keys(train.dataset) == data_keys(
        raw['train_dataloader']['dataset'])
    # the test loader is untouched: read once, at the end
    assert trial.test_dataloader.dataset == raw['test_dataloader']['dataset']
    assert data_keys(trial.test_dataloader.dataset) != data_keys(val.dataset)


def test_validation_refuses_val_indices_and_names_the_key():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'search', 'mcts_kd_fmnist.py'))
    raw = cfg.to_dict()
    raw.pop('search')
    with pytest.raises(KeyError, match='search.validation.val_size'):
        apply_validation(Config(raw), dict(val_size=100), dict(val_indices=500))
    with pytest.raises(KeyError, match="did you mean 'val_size'"):
        apply_validation(Config(raw), dict(val_sise=100), {})
