"""The offline teacher store (Auto-KD's "offline processing", aligned with augmentation).

A store is a directory::

    manifest.json                 what was stored, from what (see below)
    shard_000of002/<output>.npy   one memory-mapped array per teacher output:
                                  (samples of the shard, views, *shape)
    shard_000of002/done.npy       which samples of the shard are written (resume)

Views: the teacher's outputs on ``replays`` views of every sample for the ``same/*`` and
``ind/*`` modes (view ``k`` of sample ``i`` is drawn with ``sample_seed(store seed,
STORE_EPOCH, i, k)``, and training draws one per sample per epoch: see
:mod:`kdzoo.teaching.dataset`); one view for ``fix/rs`` and ``fix/cc``; the mean over the
``ens_crops`` crops for ``fix/ic_ens``.

The manifest records the teacher (its source and the sha256 of its checkpoint), the data
(type, length, a content hash), the teacher's view (kind, size, crop parameters), the
seed, the number of views, every output (shape, dtype, top-k) and the shard count. A run
whose teacher, data or view differ is refused, naming what differs.

Compression: ``dtype='float16'`` halves the size; ``topk=k`` keeps, for each vector output
(logits), the k largest values, their indices and the log-sum-exp of the whole vector; the
rest is filled so that at ``tau=1`` the k kept probabilities are exact and the rest of the
mass is spread evenly over the other classes (FKD's soft-label compression).
"""
import json
import os.path as osp
import re
from typing import Dict, Iterable, Optional, Sequence

import numpy as np

from .modes import Teaching

MANIFEST = 'manifest.json'
FORMAT = 'kdzoo-teacher-store/1'


class StoreMismatch(ValueError):
    """A store built for another teacher, data set or view than the run's."""


def output_file(path: str) -> str:
    """A file name for a teacher output path (``backbone.layer3[0]`` ->
    ``backbone.layer3_0_``)."""
    return re.sub(r'[^A-Za-z0-9_.-]', '_', path)


def shard_bounds(length: int, shard: int, shards: int):
    """Sample range ``[start, end)`` of ``shard`` out of ``shards`` contiguous parts."""
    return length * shard // shards, length * (shard + 1) // shards


def shard_dir(root: str, shard: int, shards: int) -> str:
    return osp.join(root, f'shard_{shard:03d}of{shards:03d}')


def store_views(teaching: Teaching, replays: int) -> int:
    """How many views per sample a store holds for ``teaching``."""
    return replays if teaching.relation in ('same', 'independent') else 1


def teacher_view_record(teaching: Teaching) -> dict:
    """What a store's teacher view is, as recorded in the manifest and compared at use."""
    record = dict(relation=teaching.relation, view=teaching.view('teacher').as_dict())
    if teaching.relation == 'ensemble':
        record['ens_crops'] = teaching.ens_crops
    return record


def differences(stored: dict, wanted: dict, prefix: str = '') -> list:
    """``['key: store has A, this run has B', ...]`` over nested dicts."""
    out = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f'{prefix}{key}.')
        elif a != b:
            out.append(f'{prefix}{key}: the store has {a!r}, this run has {b!r}')
    return out


class TeacherStore:
    """A built store, opened for reading (:meth:`open`)."""

    def __init__(self, root: str, manifest: dict):
        self.root = root
        self.manifest = manifest
        self.seed = int(manifest['seed'])
        self.replays = int(manifest['replays'])
        self.views = int(manifest['views'])
        self.length = int(manifest['dataset']['length'])
        self.shards = int(manifest['shards'])
        self.outputs: Dict[str, dict] = manifest['outputs']
        self._arrays: Dict[tuple, np.ndarray] = {}

    @classmethod
    def open(cls, root: str, check_complete: bool = True) -> 'TeacherStore':
        path = osp.join(root, MANIFEST)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'no teacher store at {root!r} (no {MANIFEST}); build one with '
                f'tools/build_teacher_store.py CONFIG --out {root}')
        with open(path) as f:
            manifest = json.load(f)
        if manifest.get('format') != FORMAT:
            raise ValueError(f'{path}: format {manifest.get("format")!r}, expected {FORMAT!r}')
        store = cls(root, manifest)
        if check_complete:
            store.check_complete()
        return store

    # -- checks -------------------------------------------------------------------------------
    def check_complete(self) -> None:
        for shard in range(self.shards):
            start, end = shard_bounds(self.length, shard, self.shards)
            done_file = osp.join(shard_dir(self.root, shard, self.shards), 'done.npy')
            done = int(np.load(done_file).sum()) if osp.isfile(done_file) else 0
            if done < end - start:
                raise RuntimeError(
                    f'teacher store {self.root!r} is incomplete: shard {shard}/{self.shards} '
                    f'holds {done} of {end - start} samples; finish it with '
                    f'tools/build_teacher_store.py CONFIG --out {self.root} '
                    f'--shard {shard}/{self.shards} (it resumes)')

    def check_data(self, fingerprint: dict, teaching: Teaching) -> None:
        """Refuse a run whose data or teacher view differ from the store's."""
        problems = differences(self.manifest['dataset'], fingerprint, 'dataset.')
        problems += differences(self.manifest['teacher_view'], teacher_view_record(teaching),
                                'teacher_view.')
        if problems:
            raise StoreMismatch(f'teacher store {self.root!r} was built for other data or '
                                f'another teacher view: ' + '; '.join(problems))

    def check_teacher(self, source: Optional[str], checkpoint_sha256: Optional[str]) -> None:
        """Refuse a run that names another teacher than the store's."""
        stored = self.manifest['teacher']
        problems = []
        stored_sha = stored.get('checkpoint_sha256')
        if stored_sha or checkpoint_sha256:  # the weights say who the teacher is
            if checkpoint_sha256 != stored_sha:
                problems.append(f'teacher checkpoint sha256: the store has {stored_sha!r} '
                                f'({stored.get("checkpoint")}), this run has '
                                f'{checkpoint_sha256!r}')
        elif source is not None and source != stored.get('source'):
            problems.append(f'teacher: the store has {stored.get("source")!r}, this run has '
                            f'{source!r}')
        if problems:
            raise StoreMismatch(f'teacher store {self.root!r} was built for another teacher: '
                                + '; '.join(problems))

    def check_outputs(self, paths: Iterable[str], where: str = 'a distill term') -> None:
        missing = [p for p in dict.fromkeys(paths) if p not in self.outputs]
        if missing:
            raise KeyError(
                f'teacher store {self.root!r} has no output {missing[0]!r}, which {where} '
                f'needs; it holds {sorted(self.outputs)}. Rebuild it with '
                f'tools/build_teacher_store.py CONFIG --outputs {" ".join(missing)}')

    # -- reading ------------------------------------------------------------------------------
    def _array(self, shard: int, name: str) -> np.ndarray:
        key = (shard, name)
        if key not in self._arrays:
            self._arrays[key] = np.load(
                osp.join(shard_dir(self.root, shard, self.shards), name + '.npy'),
                mmap_mode='r')
        return self._arrays[key]

    def read(self, path: str, indices: Sequence[int], views: Sequence[int]) -> np.ndarray:
        """The stored output ``path`` of samples ``indices``, view ``views[j]`` of each, as
        float32 ``(len(indices), *shape)``."""
        spec = self.outputs[path]
        indices = np.asarray(indices, dtype=np.int64)
        views = np.asarray(views, dtype=np.int64) % self.views
        if indices.size and (indices.min() < 0 or indices.max() >= self.length):
            raise IndexError(f'teacher store {self.root!r} holds samples 0..{self.length - 1}; '
                             f'asked for {indices.min()}..{indices.max()}')
        starts = [shard_bounds(self.length, s, self.shards)[0] for s in range(self.shards)]
        shard_of = np.searchsorted(starts, indices, side='right') - 1
        out = np.empty((len(indices),) + tuple(spec['shape']), dtype=np.float32)
        for shard in np.unique(shard_of):
            sel = np.nonzero(shard_of == shard)[0]
            start, _ = shard_bounds(self.length, int(shard), self.shards)
            rows, cols = indices[sel] - start, views[sel]
            out[sel] = self._read_rows(int(shard), path, spec, rows, cols)
        return out

    def _read_rows(self, shard, path, spec, rows, cols) -> np.ndarray:
        name = spec['file']
        if not spec.get('topk'):
            return np.asarray(self._array(shard, name)[rows, cols], dtype=np.float32)
        values = np.asarray(self._array(shard, name + '.values')[rows, cols], np.float32)
        index = np.asarray(self._array(shard, name + '.indices')[rows, cols], np.int64)
        lse = np.asarray(self._array(shard, name + '.lse')[rows, cols], np.float32)
        return expand_topk(values, index, lse, int(spec['shape'][-1]))

    def bytes_per_sample(self, paths: Optional[Iterable[str]] = None) -> int:
        """Disk bytes per sample (all its views) of the outputs ``paths`` (default: all)."""
        files = []
        for path in paths or self.outputs:
            spec = self.outputs[path]
            parts = ('.values', '.indices', '.lse') if spec.get('topk') else ('',)
            files += [spec['file'] + part + '.npy' for part in parts]
        total = sum(osp.getsize(osp.join(shard_dir(self.root, shard, self.shards), f))
                    for shard in range(self.shards) for f in files)
        return total // max(self.length, 1)


def compress_topk(logits: np.ndarray, k: int):
    """``(values, indices, lse)`` of the last axis: the k largest, their indices and the
    log-sum-exp of all (float64 inside for the sum)."""
    index = np.argsort(-logits, axis=-1, kind='stable')[..., :k]
    values = np.take_along_axis(logits, index, axis=-1)
    top = logits.max(axis=-1, keepdims=True).astype(np.float64)
    lse = (top + np.log(np.exp(logits.astype(np.float64) - top).sum(-1, keepdims=True)))[..., 0]
    return values, index, lse.astype(np.float32)


def expand_topk(values: np.ndarray, index: np.ndarray, lse: np.ndarray,
                classes: int) -> np.ndarray:
    """Logits whose softmax (at tau=1) equals the stored top-k probabilities exactly, with
    the remaining mass spread evenly over the other ``classes - k`` entries."""
    k = values.shape[-1]
    out = np.empty(values.shape[:-1] + (classes,), dtype=np.float32)
    if k < classes:
        kept = np.exp(values.astype(np.float64) - lse[..., None]).sum(-1)
        rest = np.clip(1.0 - kept, 1e-12, None) / (classes - k)
        out[...] = (lse + np.log(rest))[..., None]
    np.put_along_axis(out, index, values, axis=-1)
    return out


__all__ = ['TeacherStore', 'StoreMismatch', 'MANIFEST', 'FORMAT', 'output_file',
           'shard_bounds', 'shard_dir', 'store_views', 'teacher_view_record', 'differences',
           'compress_topk', 'expand_topk']
