"""Where the teacher's outputs come from: an online model, or a teacher store
(:mod:`kdzoo.teaching.store`).

Both give ``{teacher path: tensor}`` for a training batch, so the distill terms do not
know which one they read.
"""
import hashlib
import os.path as osp
from functools import lru_cache
from typing import Dict, Sequence

import torch
from torch import nn

from kdzoo.teaching.store import TeacherStore
from .recorder import FeatureRecorder
from .teachers import teacher_forward


class OnlineTeacher:
    """A frozen teacher model run under ``no_grad``, its features recorded by hooks.

    Inputs of shape ``(N, K, C, H, W)`` (``fix/ic_ens``'s K crops per sample) are run as
    ``N * K`` images and every output is averaged over the K crops.
    """

    def __init__(self, model: nn.Module, paths: Sequence[str], description: str):
        self.model = model
        self.paths = list(dict.fromkeys(paths))
        self.description = description
        self.recorder = FeatureRecorder(model, self.paths, owner='teacher')

    def outputs(self, inputs: torch.Tensor, data_samples=None) -> Dict[str, torch.Tensor]:
        crops = inputs.dim() == 5
        if crops:
            n, k = inputs.shape[:2]
            inputs, data_samples = inputs.flatten(0, 1), None
        with torch.no_grad(), self.recorder:
            teacher_forward(self.model, inputs, data_samples)
            feats = {p: self.recorder.get(p) for p in self.paths}
        if crops:
            feats = {p: f.reshape(n, k, *f.shape[1:]).mean(1) for p, f in feats.items()}
        return feats


class StoredTeacher:
    """The teacher's outputs read from a :class:`~kdzoo.teaching.store.TeacherStore` by the
    batch's ``sample_idx`` and ``teacher_replay`` (set by
    :class:`~kdzoo.teaching.TeachingDataset`); no teacher model is built or run."""

    def __init__(self, store: TeacherStore, paths: Sequence[str]):
        store.check_outputs(paths)
        self.store = store
        self.paths = list(dict.fromkeys(paths))
        self.description = f'the teacher store {store.root} ({store.manifest["teacher"]["source"]})'

    def outputs(self, inputs: torch.Tensor, data_samples=None) -> Dict[str, torch.Tensor]:
        if not isinstance(data_samples, dict) or 'sample_idx' not in data_samples:
            raise KeyError('a teacher store needs the batch\'s sample_idx and teacher_replay: '
                           'train with teaching=dict(mode=..., store=...) so that the train '
                           'dataset is a TeachingDataset')
        index = data_samples['sample_idx'].cpu().numpy()
        views = data_samples['teacher_replay'].cpu().numpy()
        return {p: torch.from_numpy(self.store.read(p, index, views)).to(inputs.device)
                for p in self.paths}


def file_sha256(path: str) -> str:
    """sha256 of a file, cached by (path, size, mtime): every trial of a search checks it."""
    stat = osp.getsize(path), osp.getmtime(path)
    return _sha256(osp.abspath(path), *stat)


@lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


__all__ = ['OnlineTeacher', 'StoredTeacher', 'file_sha256']
