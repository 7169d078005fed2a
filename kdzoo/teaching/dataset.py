"""The teaching dataset: the student's view and the teacher's view(s) of one raw image.

``TeachingDataset`` wraps a dataset whose pipeline only loads the raw image (``[]`` for
kdzoo's array datasets, ``[LoadImageFromFile]`` for image folders); it cuts the views of
the teaching mode (:mod:`kdzoo.teaching.modes`) from that image and packs them:
``dict(inputs=student view, data_samples=..., teacher_inputs=teacher view)``.
``teacher_inputs`` is left out when the teacher sees the student's batch (``same/*`` at
one size); it is ``(K, C, H, W)`` for ``fix/ic_ens``. ``data_samples`` also carries
``sample_idx`` and ``teacher_replay``: the keys of the teacher's view in a teacher store.

Seeds: every view is a pure function of its seed (:func:`kdzoo.teaching.views.make_view`).
Online, sample ``i`` of epoch ``e`` of a run seeded ``s`` draws the student's view with
``sample_seed(s, e, i, 0)``; an independent teacher view with ``sample_seed(s, e, i, 1)``;
fixed views need no seed; the K ensemble crops of ``fix/ic_ens`` use
``sample_seed(s, FIXED_EPOCH, i, 1 + k)``, the same every epoch. With a store of K replays,
view ``k`` of sample ``i`` is drawn with ``sample_seed(store seed, STORE_EPOCH, i, k)`` and
every epoch picks one replay per sample (:func:`pick_replay`), so the student's view is
exactly one whose teacher outputs are stored (FKD's way; Auto-KD's offline teacher).
"""
import copy
from typing import Optional

import numpy as np
import torch

from kdzoo.datasets.seeding import DatasetWrapper, _derive, sample_seed
from kdzoo.registry import DATASETS, TRANSFORMS
from .modes import Teaching
from .views import make_view

#: The "epoch" of views that never change: fixed-teacher ensembles and store replays.
FIXED_EPOCH = 2**64 - 1
STORE_EPOCH = 2**64 - 2


def pick_replay(seed: int, epoch: int, index: int, replays: int, stream: int = 0) -> int:
    """Which of a store's ``replays`` views sample ``index`` uses in ``epoch`` of a run
    seeded ``seed`` (``stream=1``: the independent teacher view of ``ind/*`` modes)."""
    return _derive(b'kdzoo-replay', seed, epoch, index, stream) % replays


@DATASETS.register_module()
class TeachingDataset(DatasetWrapper):
    """Wrap ``dataset`` (built from a dict if needed) to yield the views of ``teaching``.

    Args:
        dataset: a dataset whose items are results dicts with the raw ``img`` (its pipeline
            loads, it does not augment).
        teaching: ``dict(mode=..., size=..., ...)``, see :class:`~kdzoo.teaching.Teaching`.
        pack: the packing step (kdzoo's ``PackClsInputs`` by default).
        teacher_views: False for a model without a teacher (a student trained alone on the
            mode's student views): only the student's view is packed.

    The index must be a :class:`~kdzoo.datasets.SeededIndex` (``train_dataloader.sampler=
    dict(type='SeededSampler')``); :meth:`get_seeded` builds a sample directly.
    """

    def __init__(self, dataset, teaching, pack: Optional[dict] = None,
                 teacher_views: bool = True):
        super().__init__(dataset)
        self.teaching = Teaching.from_cfg(teaching)
        self.pack = TRANSFORMS.build(pack or dict(type='PackClsInputs'))
        self.teacher_views = bool(teacher_views)
        self.student_view = self.teaching.view('student')
        self.teacher_view = self.teaching.view('teacher')
        self.store = None
        if self.teaching.store is not None and self.teacher_views:
            from .store import TeacherStore
            self.store = TeacherStore.open(self.teaching.store)
            self.store.check_data(self.dataset_fingerprint(), self.teaching)

    # -- what a store must match ------------------------------------------------------------
    def dataset_fingerprint(self) -> dict:
        """The data a store was built on: the wrapped dataset's type, length, and a hash of
        its first and last raw images and labels."""
        n = len(self.dataset)
        h = _content_hash(self.dataset, n)
        return dict(type=type(self.dataset).__name__, length=n, content=h)

    def __getitem__(self, idx):
        seed, epoch = getattr(idx, 'seed', None), getattr(idx, 'epoch', None)
        if seed is None:
            raise TypeError(
                f'TeachingDataset draws every view from seeds, but got the plain index '
                f'{idx!r}: use train_dataloader.sampler=dict(type="SeededSampler") (or '
                f'dataset.get_seeded(index, seed, epoch))')
        return self.get_seeded(int(idx), seed, epoch)

    def get_seeded(self, index: int, seed: int, epoch: int) -> dict:
        """Sample ``index`` as built in ``epoch`` of a run seeded ``seed``."""
        raw = self.dataset[index]
        img = _with_channels(raw['img'])
        teaching, store = self.teaching, self.store
        replay = teacher_replay = 0
        if store is not None and teaching.relation in ('same', 'independent'):
            replay = pick_replay(seed, epoch, index, store.replays)
            student_seed = sample_seed(store.seed, STORE_EPOCH, index, replay)
        else:
            student_seed = sample_seed(seed, epoch, index, 0)
        out = self._pack(raw, make_view(img, self.student_view, student_seed))
        if not self.teacher_views:
            return out
        teacher = None
        if teaching.relation == 'same':
            teacher_replay = replay
            if not teaching.teacher_sees_student_batch:
                teacher = make_view(img, self.teacher_view, student_seed)
        elif teaching.relation == 'independent':
            if store is not None:
                teacher_replay = pick_replay(seed, epoch, index, store.replays, stream=1)
                teacher_seed = sample_seed(store.seed, STORE_EPOCH, index, teacher_replay)
            else:
                teacher_seed = sample_seed(seed, epoch, index, 1)
            teacher = make_view(img, self.teacher_view, teacher_seed)
        elif teaching.relation == 'fixed':
            teacher = make_view(img, self.teacher_view, 0)
        elif store is None:  # ensemble, online: the K fixed crops
            teacher = np.stack([make_view(img, self.teacher_view,
                                          sample_seed(seed, FIXED_EPOCH, index, 1 + k))
                                for k in range(teaching.ens_crops)])
        if store is None and teacher is not None:
            out['teacher_inputs'] = _to_chw(teacher)
        _set_meta(out, sample_idx=index, teacher_replay=teacher_replay)
        return out

    def teacher_view_of(self, index: int, replay: int, seed: int) -> torch.Tensor:
        """The teacher's input for sample ``index``, view ``replay`` of a store seeded
        ``seed`` (what :mod:`kdzoo.teaching.store` runs the teacher on): ``(C, H, W)``, or
        ``(K, C, H, W)`` for ``fix/ic_ens``."""
        img = _with_channels(self.dataset[index]['img'])
        teaching = self.teaching
        if teaching.relation == 'fixed':
            return _to_chw(make_view(img, self.teacher_view, 0))
        if teaching.relation == 'ensemble':
            return _to_chw(np.stack([
                make_view(img, self.teacher_view, sample_seed(seed, FIXED_EPOCH, index, 1 + k))
                for k in range(teaching.ens_crops)]))
        return _to_chw(make_view(img, self.teacher_view,
                                 sample_seed(seed, STORE_EPOCH, index, replay)))

    def _pack(self, raw: dict, view: np.ndarray) -> dict:
        results = copy.copy(raw)
        results['img'] = view
        results['img_shape'] = view.shape[:2]
        return self.pack(results)


def _with_channels(img) -> np.ndarray:
    img = np.asarray(img)
    return img[..., None] if img.ndim == 2 else img


def _to_chw(img: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` -> ``(C, H, W)``; ``(K, H, W, C)`` -> ``(K, C, H, W)``."""
    perm = (2, 0, 1) if img.ndim == 3 else (0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(perm)))


def _set_meta(out: dict, **meta) -> None:
    """Add ``meta`` to a packed sample's data samples (a dict, or an mmengine data
    element)."""
    samples = out.get('data_samples')
    if isinstance(samples, dict):
        samples.update({k: torch.as_tensor(v, dtype=torch.long) for k, v in meta.items()})
    elif samples is not None and hasattr(samples, 'set_metainfo'):
        samples.set_metainfo(meta)
    else:
        out['data_samples'] = {k: torch.as_tensor(v, dtype=torch.long)
                               for k, v in meta.items()}


def _content_hash(dataset, n: int) -> str:
    """A cheap fingerprint of a dataset's content: its first and last samples."""
    import hashlib
    digest = hashlib.sha256()
    for i in sorted({0, n // 2, n - 1}) if n else []:
        item = dataset[i]
        digest.update(np.ascontiguousarray(item['img']).tobytes())
        digest.update(repr(item.get('gt_label')).encode())
    return digest.hexdigest()[:16]


__all__ = ['TeachingDataset', 'pick_replay', 'FIXED_EPOCH', 'STORE_EPOCH']
