"""Data without labels, for label-free pre-training (KDEP distils on unlabeled images).

``UnlabeledDataset`` wraps any data set and drops the labels from every sample, so nothing
downstream (a task loss, a metric, a label-reading distance) can use them by accident::

    train_dataloader = dict(dataset=dict(
        type='UnlabeledDataset',
        dataset=dict(type='FashionMNIST', split='train', pipeline=train_pipeline)))

An image folder without class folders is read by ``ImageFolder(..., with_label=False)``.
"""
from kdzoo.registry import DATASETS
from .seeding import DatasetWrapper, sample_seed, seeded_rngs, _restore_here

#: keys that carry a sample's label in kdzoo's data infos and packed samples
LABEL_KEYS = ('gt_label', 'gt_labels', 'gt_score')


def strip_labels(item):
    """``item`` (a packed sample ``dict(inputs, data_samples)`` or a pipeline's results
    dict) without its label keys."""
    if not isinstance(item, dict):
        raise TypeError(f'UnlabeledDataset: expected a dict sample, got {type(item).__name__}')
    item = {k: v for k, v in item.items() if k not in LABEL_KEYS}
    samples = item.get('data_samples')
    if isinstance(samples, dict):
        item['data_samples'] = {k: v for k, v in samples.items() if k not in LABEL_KEYS}
    elif samples is not None and any(hasattr(samples, k) for k in LABEL_KEYS):
        raise TypeError(f'UnlabeledDataset: data_samples of type {type(samples).__name__} '
                        f'carry labels that it cannot remove; pack samples with '
                        f'PackClsInputs (a dict)')
    return item


@DATASETS.register_module()
class UnlabeledDataset(DatasetWrapper):
    """``dataset`` (a config dict or a data set) with every label removed.

    Samples keep their image and meta keys; ``gt_label`` (and ``gt_labels``, ``gt_score``)
    are dropped after the pipeline, so a batch's ``data_samples`` hold no labels. The
    wrapped data set's length, ``metainfo`` and per-sample seeding are kept.
    """
    has_labels = False

    def __getitem__(self, idx):
        seed = getattr(idx, 'sample_seed', None)
        if seed is None or hasattr(self.dataset, 'get_seeded'):
            return strip_labels(self.dataset[idx])  # a seeded data set seeds itself
        with seeded_rngs(seed, restore=_restore_here()):
            return strip_labels(self.dataset[int(idx)])

    def get_seeded(self, index: int, seed: int, epoch: int, replay: int = 0):
        """See :meth:`kdzoo.datasets.SeededSamplesMixin.get_seeded`."""
        inner = getattr(self.dataset, 'get_seeded', None)
        if inner is not None:
            return strip_labels(inner(index, seed, epoch, replay))
        with seeded_rngs(sample_seed(seed, epoch, index, replay)):
            return strip_labels(self.dataset[int(index)])

    def get_gt_labels(self):
        raise RuntimeError('UnlabeledDataset has no labels (it drops them on purpose)')


__all__ = ['UnlabeledDataset', 'strip_labels', 'LABEL_KEYS']
