"""A validation split carved out of the training data: what searches, early stops, rewards
and DynaKD's theta-step select on, so the test split is read once, at the end.

:func:`HeldOutSplit` wraps any MMEngine ``BaseDataset`` (kdzoo's, mmdet's, mmseg's): one
part of a seeded split of its items, cut with ``get_subset_``. With ``stratified=True`` and
a dataset that has class labels (``get_gt_labels``), every class keeps its share in the
validation part (largest remainders), so a small validation part still sees every class.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np

from kdzoo.registry import DATASETS

HELD_OUT_PARTS = ('train', 'val')


def _stratified_order(labels: Sequence[int], val_size: int,
                      rng: np.random.Generator) -> Tuple[List[int], List[int]]:
    """``(validation items, the rest in random order)``: each class gives
    ``val_size * n_class / n`` items, the rounding by largest remainders."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    quota = val_size * counts / len(labels)
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take), kind='stable')[:val_size - take.sum()]:
        take[i] += 1
    val, rest = [], []
    for cls, k in zip(classes, take):
        members = rng.permutation(np.nonzero(labels == cls)[0])
        val += members[:k].tolist()
        rest += members[k:].tolist()
    return val, rng.permutation(np.asarray(rest, dtype=np.int64)).tolist()


def held_out_indices(total: int, val_size: int, seed: int = 0,
                     train_size: Optional[int] = None,
                     labels: Optional[Sequence[int]] = None) -> Tuple[List[int], List[int]]:
    """Split ``range(total)`` into a training part and a held-out validation part.

    ``val_size`` is a number of items or, as a float in (0, 1), a fraction of ``total``.
    Unstratified (``labels=None``): a permutation seeded by ``seed`` (numpy's
    ``default_rng``), its first ``val_size`` entries the validation part, the next
    ``train_size`` (default: all the rest) the training part. Stratified: each class gives
    its share of ``val_size``; the training part is drawn from the rest. Both parts are
    sorted, disjoint, and the same on every machine.
    """
    if isinstance(val_size, float) and 0 < val_size < 1:
        val_size = max(1, int(round(val_size * total)))
    if not isinstance(val_size, int) or isinstance(val_size, bool) or not 0 < val_size < total:
        raise ValueError(f'HeldOutSplit: val_size={val_size!r} must be an int in [1, {total}) '
                         f'or a fraction in (0, 1) (the data set has {total} items)')
    rest_size = total - val_size
    if train_size is None:
        train_size = rest_size
    if not isinstance(train_size, int) or isinstance(train_size, bool) \
            or not 0 < train_size <= rest_size:
        raise ValueError(f'HeldOutSplit: train_size={train_size!r} must be an int in [1, '
                         f'{rest_size}] ({total} items minus val_size={val_size})')
    rng = np.random.default_rng(int(seed))
    if labels is None:
        order = rng.permutation(total)
        val, rest = order[:val_size].tolist(), order[val_size:].tolist()
    else:
        if len(labels) != total:
            raise ValueError(f'HeldOutSplit: {len(labels)} labels for {total} items')
        val, rest = _stratified_order(labels, val_size, rng)
    return sorted(int(i) for i in rest[:train_size]), sorted(int(i) for i in val)


@DATASETS.register_module()
def HeldOutSplit(dataset: dict, part: str, val_size: int, seed: int = 0,
                 train_size: Optional[int] = None, stratified: bool = False):
    """One part of a seeded train / validation split of a data set (e.g. Fashion-MNIST's
    training split): ``part='val'`` the ``val_size`` held-out items, ``part='train'`` the
    others (or ``train_size`` of them), as :func:`held_out_indices` says. The two parts of
    the same ``(dataset, val_size, seed, stratified)`` never share an item::

        train_dataloader = dict(dataset=dict(type='HeldOutSplit', part='train',
            val_size=5000, seed=0, dataset=dict(type='FashionMNIST', split='train', ...)))
        val_dataloader = dict(dataset=dict(type='HeldOutSplit', part='val', ...))

    ``stratified=True`` keeps every class's share in the validation part (a dataset with
    ``get_gt_labels``; others, e.g. detection sets, are split unstratified). Returns the
    wrapped data set itself (an MMEngine ``BaseDataset`` cut with ``get_subset_``), so its
    per-sample seeding and ``metainfo`` are unchanged.
    """
    if part not in HELD_OUT_PARTS:
        raise ValueError(f'HeldOutSplit: part={part!r}; valid: {", ".join(HELD_OUT_PARTS)}')
    if not isinstance(dataset, dict):
        raise TypeError('HeldOutSplit: dataset must be a data set config dict')
    if dataset.get('indices') is not None:
        raise ValueError(f'HeldOutSplit: the inner dataset sets indices={dataset["indices"]!r}; '
                         f'size the parts with val_size / train_size instead')
    built = DATASETS.build(dataset)
    if not hasattr(built, 'get_subset_'):
        raise TypeError(f'HeldOutSplit: {type(built).__name__} is not an MMEngine BaseDataset '
                        f'(it has no get_subset_)')
    built.full_init()
    labels = built.get_gt_labels() if stratified and hasattr(built, 'get_gt_labels') else None
    train, val = held_out_indices(len(built), val_size, seed, train_size, labels)
    built.get_subset_(train if part == 'train' else val)
    return built


__all__ = ['HeldOutSplit', 'held_out_indices', 'HELD_OUT_PARTS']
