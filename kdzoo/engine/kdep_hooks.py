"""KDEP's fit step: the non-parametric alignment is fitted over training data before
training starts (He et al., CVPR 2022; the official code computes the SVD of the teacher's
features over a pass of the pre-training images, ``gen_svd_weights.py``, before
distilling).

:class:`KDEPFitHook` runs the distiller's student and teacher over ``num_samples``
training samples (drawn with a fixed seed, each fetched under its own seeded RNGs, so every
rank fetches the same ones), passes every term's features through the term's connector,
``tau`` and transforms as the distill term would, and fits the stateful KDEP transforms in
order (:func:`kdzoo.kd.transforms.kdep.fit_chain`): the SVD basis, SN's channel statistics,
SM's channel statistics and target std (the pre-SVD max std). Under distributed training
every rank fits, then rank 0's state is broadcast, so all ranks hold bitwise the same basis.
The state lives in the transforms' buffers and is saved with checkpoints; a resumed run
(whose transforms are already fitted) skips the pass.
"""
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import default_collate
from mmengine.dist import broadcast, get_world_size
from mmengine.hooks import Hook

from kdzoo.datasets.seeding import sample_seed, seeded_rngs
from kdzoo.kd.transforms.kdep import fit_chain, fitted_state, needs_fit
from kdzoo.registry import HOOKS
from .hooks import unwrap

#: the replay slot of :func:`sample_seed` that the fit pass uses: its augmentation draws
#: differ from those of every training epoch's first view.
FIT_REPLAY = 2**16 - 1


def fit_indices(total: int, num_samples: int, seed: int) -> List[int]:
    """``num_samples`` distinct indices of ``range(total)`` (all when it is not larger),
    a permutation seeded by ``seed``: the same on every rank and machine."""
    if num_samples >= total:
        return list(range(total))
    return sorted(int(i) for i in np.random.default_rng(int(seed)).permutation(total)[:num_samples])


@HOOKS.register_module()
class KDEPFitHook(Hook):
    """Fit the distiller's KDEP transforms (``svd``, ``sn``, ``sm``) before training.

    Args:
        num_samples: training samples in the pass (KDEP's code: its pre-training subset).
        batch_size: samples per forward of the pass.
        seed: which samples, and the seed of each one's augmentation.
        broadcast_from: the rank whose fitted state every rank takes.
    """
    priority = 'VERY_HIGH'  # before any hook that could run a forward

    def __init__(self, num_samples: int = 4096, batch_size: int = 256, seed: int = 0,
                 broadcast_from: int = 0):
        if int(num_samples) < 2:
            raise ValueError(f'KDEPFitHook: num_samples={num_samples} must be >= 2 (an SVD '
                             f'of centred features needs two samples)')
        if int(batch_size) < 1:
            raise ValueError(f'KDEPFitHook: batch_size={batch_size} must be >= 1')
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.broadcast_from = int(broadcast_from)

    def before_train(self, runner) -> None:
        loader = runner.train_dataloader
        lines = self.fit(unwrap(runner.model), loader.dataset,
                         getattr(loader, 'collate_fn', None) or default_collate)
        for line in lines:
            runner.logger.info(line)

    @torch.no_grad()
    def fit(self, model, dataset, collate_fn: Optional[Callable] = None) -> List[str]:
        """Fit every term of ``model`` (a Distiller) on ``dataset``; the log lines."""
        terms = self._terms(model)
        todo = [i for i, term in enumerate(terms) if needs_fit(term.transforms)]
        if not todo:
            return ['KDEPFitHook: the KDEP transforms are already fitted (resumed run); '
                    'nothing to fit']
        collate_fn = collate_fn or default_collate
        indices = fit_indices(len(dataset), self.num_samples, self.seed)
        feats = self._features(model, dataset, collate_fn, indices, [terms[i] for i in todo],
                               [model.term_specs[i] for i in todo])
        lines = [f'KDEPFitHook: fitting on {len(indices)} training samples (seed {self.seed})'
                 f'{f", on each of {get_world_size()} ranks" if get_world_size() > 1 else ""}']
        for i, (s, t) in zip(todo, feats):
            spec = model.term_specs[i]
            for line in fit_chain(terms[i].transforms, s, t):
                lines.append(f"  term {spec['name']!r} ({spec['student']} -> "
                             f"{spec['teacher']}): {line}")
        if get_world_size() > 1:
            self._broadcast([terms[i] for i in todo])
            lines.append(f'  fitted state broadcast from rank {self.broadcast_from}')
        return lines

    @staticmethod
    def _terms(model) -> Sequence:
        if getattr(model, 'terms', None) is None or getattr(model, 'student', None) is None:
            raise TypeError(f'KDEPFitHook needs a Distiller, got {type(model).__name__}')
        if getattr(model, 'pool', None) is not None:
            raise ValueError('KDEPFitHook fits the transforms on one teacher\'s features; '
                             'a teacher pool (teachers=[...]) is not supported')
        return list(model.terms)

    def _features(self, model, dataset, collate_fn, indices, terms, specs):
        """Per term: the student and teacher features of the samples, after the term's
        connector and ``/ tau``, stacked along dim 0."""
        student = model.student
        was_training = student.training
        student.eval()  # no BN statistics move during the pass
        s_parts: Dict[int, list] = {i: [] for i in range(len(terms))}
        t_parts: Dict[int, list] = {i: [] for i in range(len(terms))}
        try:
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                items = []
                for index in chunk:
                    # Each sample under its own seeded RNGs: the same view on every rank.
                    with seeded_rngs(sample_seed(self.seed, 0, index, FIT_REPLAY)):
                        items.append(dataset[index])
                data = model.data_preprocessor(collate_fn(items), True)
                inputs, samples = data['inputs'], data.get('data_samples')
                teacher_inputs = data.get('teacher_inputs')
                with model.student_recorder:
                    student(inputs, samples, mode='tensor')
                    s_feats = {spec['student']: model.student_recorder.get(spec['student'])
                               for spec in specs}
                t_feats = model.source.outputs(
                    inputs if teacher_inputs is None else teacher_inputs, samples)
                for j, (term, spec) in enumerate(zip(terms, specs)):
                    s, t = s_feats[spec['student']], t_feats[spec['teacher']]
                    if term.connector is not None:
                        term.connector.eval()
                        s = term.connector(s, t.shape)
                    s_parts[j].append((s / term.tau).detach())
                    t_parts[j].append((t / term.tau).detach())
        finally:
            student.train(was_training)
            for term in terms:
                if term.connector is not None:
                    term.connector.train(was_training)
        return [(torch.cat(s_parts[j]), torch.cat(t_parts[j])) for j in range(len(terms))]

    def _broadcast(self, terms) -> None:
        for term in terms:
            for _, buf in fitted_state(term.transforms):
                if buf.dtype == torch.bool:  # gloo broadcasts no bool tensors
                    tmp = buf.to(torch.uint8)
                    broadcast(tmp, src=self.broadcast_from)
                    buf.copy_(tmp.bool())
                else:
                    broadcast(buf, src=self.broadcast_from)


__all__ = ['KDEPFitHook', 'fit_indices', 'FIT_REPLAY']
