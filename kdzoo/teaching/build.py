"""Build a teacher store: run the teacher once over the training set
(``tools/build_teacher_store.py CONFIG``; see :mod:`kdzoo.teaching.store` for the format).
For a search config, the store holds what its trials train on (the validation split and
the proxy settings applied) and the teacher outputs of every term of its space.

The teacher, its checkpoint, the data and the teacher's view all come from the config
(its ``teaching`` and ``model``), so the store holds exactly what an online run's teacher
would compute on the same views. Several processes can build one store (``shard=(i, n)``,
one contiguous part each); a killed build resumes where its ``done.npy`` says.
"""
import copy
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config

from kdzoo.utils.files import read_json, write_json
from .config import apply_teaching
from .modes import Teaching
from .store import (FORMAT, MANIFEST, StoreMismatch, compress_topk, differences,
                    output_file, shard_bounds, shard_dir, store_views, teacher_view_record)


def search_trial_data(cfg: Config) -> Tuple[Config, List[str]]:
    """For a search config: the config as its trials see it (the validation split and the
    proxy settings applied, so the store holds the trials' training images) and the teacher
    paths of every term of its space."""
    from kdzoo.search.settings import apply_proxy, apply_validation, search_settings
    settings = search_settings(cfg.get('search'))
    cfg = Config(cfg.to_dict(), filename=cfg.filename)
    cfg.pop('search')
    proxy = dict(settings['proxy'])
    proxy.pop('teacher_store', None)
    cfg, proxy = apply_validation(cfg, settings['validation'], proxy)
    cfg = apply_proxy(cfg, proxy)
    terms = (settings['space'] or {}).get('terms', [])
    paths = [t['teacher'] for t in terms if isinstance(t.get('teacher'), str)]
    return cfg, paths


def build_parts(cfg: Config):
    """The online distiller and the ``TeachingDataset`` of ``cfg`` (its store, if any,
    ignored: this is what builds it)."""
    from kdzoo.models.distiller import Distiller
    from kdzoo.registry import DATASETS, MODELS
    if cfg.get('teaching') is None:
        raise KeyError('a teacher store is built for a teaching mode: the config needs a '
                       "top-level teaching=dict(mode=..., size=...)")
    cfg.teaching.store = None
    apply_teaching(cfg)
    model = MODELS.build(cfg.model)
    if not isinstance(model, Distiller) or model.teacher is None:
        raise TypeError('a teacher store needs a Distiller config with one teacher '
                        '(model.teacher)')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return model, dataset


def _manifest(model, dataset, teaching: Teaching, seed: int, replays: int, shards: int,
              shapes: dict, dtype: str, topk: Optional[int]) -> dict:
    from kdzoo.models.sources import file_sha256
    ckpt = model.teacher_checkpoint_file
    outputs = {}
    for path, shape in shapes.items():
        spec = dict(file=output_file(path), shape=list(shape), dtype=dtype)
        if topk and len(shape) == 1 and topk < shape[0]:
            spec['topk'] = int(topk)
        outputs[path] = spec
    return dict(format=FORMAT,
                teacher=dict(source=model.teacher_source, checkpoint=ckpt,
                             checkpoint_sha256=file_sha256(ckpt) if ckpt else None),
                dataset=dataset.dataset_fingerprint(),
                teacher_view=teacher_view_record(teaching),
                seed=int(seed), replays=int(replays), views=store_views(teaching, replays),
                shards=int(shards), outputs=outputs)


class _Writer:
    """The memory-mapped arrays of one shard."""

    def __init__(self, folder: str, rows: int, views: int, outputs: dict):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.arrays = {}
        for path, spec in outputs.items():
            shape = tuple(spec['shape'])
            if spec.get('topk'):
                k = spec['topk']
                index_dtype = 'int16' if shape[0] <= np.iinfo(np.int16).max else 'int32'
                parts = {'.values': ((rows, views, k), spec['dtype']),
                         '.indices': ((rows, views, k), index_dtype),
                         '.lse': ((rows, views), 'float32')}
            else:
                parts = {'': ((rows, views) + shape, spec['dtype'])}
            for suffix, (full, dtype) in parts.items():
                file = osp.join(folder, spec['file'] + suffix + '.npy')
                mode = 'r+' if osp.isfile(file) else 'w+'
                self.arrays[(path, suffix)] = np.lib.format.open_memmap(
                    file, mode=mode, dtype=dtype, shape=full if mode == 'w+' else None)
        self.done_file = osp.join(folder, 'done.npy')
        self.done = np.load(self.done_file) if osp.isfile(self.done_file) else \
            np.zeros(rows, dtype=bool)

    def write(self, rows: np.ndarray, outputs: dict, specs: dict) -> None:
        for path, value in outputs.items():
            spec = specs[path]
            if spec.get('topk'):
                values, index, lse = compress_topk(value, spec['topk'])
                self.arrays[(path, '.values')][rows] = values
                self.arrays[(path, '.indices')][rows] = index
                self.arrays[(path, '.lse')][rows] = lse
            else:
                self.arrays[(path, '')][rows] = value
        for array in self.arrays.values():
            array.flush()
        # the outputs are on disk before the samples are marked done
        self.done[rows] = True
        tmp = self.done_file + f'.tmp{os.getpid()}.npy'
        np.save(tmp, self.done)
        os.replace(tmp, self.done_file)


def build_store(cfg: Config, out: str, replays: int = 4, dtype: str = 'float32',
                topk: Optional[int] = None, shard: Tuple[int, int] = (0, 1),
                seed: Optional[int] = None, extra_outputs: Sequence[str] = (),
                batch_size: int = 64, device: str = 'cpu', progress: bool = True) -> str:
    """Build (or resume) shard ``shard = (i, n)`` of the store of ``cfg`` in ``out``.

    Returns ``out``. ``replays``: views per sample for the ``same/*`` / ``ind/*`` modes;
    ``dtype``: ``float32`` or ``float16``; ``topk``: keep the k largest of vector outputs.
    """
    if dtype not in ('float32', 'float16'):
        raise ValueError(f'dtype={dtype!r}; valid: float32, float16')
    if replays < 1:
        raise ValueError(f'replays={replays} must be >= 1')
    index, shards = shard
    if not 0 <= index < shards:
        raise ValueError(f'shard {index}/{shards}: need 0 <= i < n')
    from kdzoo.models.sources import OnlineTeacher  # kdzoo.models imports this package
    cfg = copy.deepcopy(cfg)  # the caller's config stays as it is
    seed = int(cfg.get('randomness', {}).get('seed') or 0) if seed is None else int(seed)
    if cfg.get('search') is not None:  # a search config: the data and outputs of its trials
        cfg, space_paths = search_trial_data(cfg)
        extra_outputs = list(extra_outputs) + space_paths
    model, dataset = build_parts(cfg)
    teaching = dataset.teaching
    model.to(device).eval()
    paths = [s['teacher'] for s in model.term_specs] + list(extra_outputs)
    teacher = OnlineTeacher(model.teacher, paths, model.teacher_source)
    views = store_views(teaching, replays)
    start, end = shard_bounds(len(dataset), index, shards)

    def run(samples, view_ids):
        batch = torch.stack([dataset.teacher_view_of(i, v, seed)
                             for i, v in zip(samples, view_ids)])
        data = dict(inputs=batch[:, 0] if batch.dim() == 5 else batch, data_samples=None,
                    teacher_inputs=batch)
        with torch.no_grad():
            x = model.data_preprocessor(data, True)['teacher_inputs']
        return {p: f.float().cpu().numpy() for p, f in teacher.outputs(x).items()}

    first = run([start], [0])
    shapes = {p: v.shape[1:] for p, v in first.items()}
    manifest = _manifest(model, dataset, teaching, seed, replays, shards, shapes, dtype, topk)
    os.makedirs(out, exist_ok=True)
    manifest_file = osp.join(out, MANIFEST)
    existing = read_json(manifest_file)
    if existing is not None:
        problems = differences(existing, manifest)
        if problems:
            raise StoreMismatch(f'{out} holds a store built with other settings: '
                                + '; '.join(problems) + '. Use another --out, or delete it')
    else:
        write_json(manifest_file, manifest)
    writer = _Writer(shard_dir(out, index, shards), end - start, views, manifest['outputs'])
    todo = [start + r for r in np.nonzero(~writer.done)[0]]
    per_batch = max(1, batch_size // views)
    with _progress(progress, len(todo), f'teacher store {index}/{shards}') as advance:
        for b in range(0, len(todo), per_batch):
            samples = todo[b:b + per_batch]
            ids = [i for i in samples for _ in range(views)]
            outputs = run(ids, [v for _ in samples for v in range(views)])
            rows = np.asarray(samples) - start
            shaped = {p: v.reshape(len(samples), views, *v.shape[1:])
                      for p, v in outputs.items()}
            writer.write(rows, shaped, manifest['outputs'])
            advance(len(samples))
    return out


class _progress:
    """A rich progress bar over samples (nothing when ``enabled`` is False)."""

    def __init__(self, enabled: bool, total: int, title: str):
        self.enabled, self.total, self.title = enabled, total, title

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        self.bar = Progress(TextColumn('{task.description}'), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        self.bar.__enter__()
        task = self.bar.add_task(self.title, total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.__exit__(*exc)
        return False


__all__ = ['build_store', 'build_parts']
