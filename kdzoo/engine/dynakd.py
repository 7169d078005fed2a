"""DynaKD's search stage: the held-out split of the training data and the theta-step hook.

DynaKD (AAAI 2024) learns the distribution ``Cat(theta)`` over a teacher pool by bi-level
optimisation, alternating

- the theta-step (student frozen): the gradient of the student's validation loss with
  respect to ``theta``, through the continuous relaxation ``f_bar = sum_i theta_i f_Ti`` and a
  one-step unrolled student update (:func:`kdzoo.models.pool.unrolled_validation_loss`);
- the w-step (theta frozen): an ordinary training step of a ``sample`` pool, one teacher
  drawn from ``Cat(theta)``, its loss weighted by ``theta_k``.

:class:`DynaKDSearchHook` runs the theta-step before every ``interval``-th training
iteration, on a validation batch drawn from a split carved out of the training set
(:func:`kdzoo.datasets.HeldOutSplit`), logs theta every iteration (``train/theta_<member>``) and every epoch
(the log and ``WORK_DIR/theta.json``), and saves its optimizer state with the checkpoint, so
a resumed search continues exactly (theta itself is a parameter of the distiller,
``pool.theta_logits``, saved with it).
"""
import hashlib
import json
import os.path as osp
import struct
from typing import List, Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.registry import FUNCTIONS

from kdzoo.datasets.splits import HeldOutSplit, held_out_indices  # noqa: F401
from kdzoo.registry import DATASETS, HOOKS
from .hooks import unwrap

def val_batch_seed(seed: int, iteration: int) -> int:
    """The seed of the theta-step's validation batch at ``iteration``: ``blake2b`` of
    ``(seed, iteration)`` as little-endian uint64 with ``person=b'kdzoo-dynakd-val'``, read
    as an int below 2**63 (what ``torch.Generator.manual_seed`` takes)."""
    digest = hashlib.blake2b(struct.pack('<2Q', int(seed) % 2**64, int(iteration)),
                             digest_size=8, person=b'kdzoo-dynakd-val').digest()
    return int.from_bytes(digest, 'little') % 2**63


@HOOKS.register_module()
class DynaKDSearchHook(Hook):
    """DynaKD's theta-step, before every ``interval``-th training iteration.

    Needs a :class:`~kdzoo.models.Distiller` with ``teachers=[...]`` and
    ``pool=dict(mode='sample')`` (the w-step is then its ordinary training step). Each
    theta-step draws a validation batch of ``batch_size`` items from ``dataset`` (a split
    carved from the training data, e.g. :func:`HeldOutSplit` with ``part='val'``; the batch
    is a function of the run seed and the iteration, so a resumed run draws the same ones),
    computes ``L_val(w - xi * grad_w L_train(w, theta))`` on it and the current training batch
    (:func:`~kdzoo.models.pool.unrolled_validation_loss`), and moves ``theta_logits`` with
    Adam.

    Args:
        dataset: the validation data set config (or a built data set).
        batch_size: validation items per theta-step.
        theta_lr, betas, weight_decay: Adam on the logits of theta (DARTS: 3e-4,
            (0.5, 0.999), 1e-3 over tens of thousands of steps; a short search needs a
            larger rate).
        unroll_lr: xi, the step of the virtual student update; ``None``: the optimizer's
            current learning rate (DARTS's choice).
        interval: a theta-step every ``interval`` iterations.
        begin_epoch: no theta-steps before this epoch (a warm-up of the student).
        collate_fn: how items become a batch (a ``FUNCTIONS`` name, like a dataloader's).
    """
    priority = 'NORMAL'  # after StepSeedHook (VERY_HIGH) has seeded the iteration

    def __init__(self, dataset, batch_size: int = 128, theta_lr: float = 0.01,
                 betas: Sequence[float] = (0.5, 0.999), weight_decay: float = 1e-3,
                 unroll_lr: Optional[float] = None, interval: int = 1, begin_epoch: int = 0,
                 collate_fn: Optional[dict] = None):
        self.dataset_cfg = dataset
        self.batch_size = int(batch_size)
        self.theta_lr = float(theta_lr)
        self.betas = tuple(betas)
        self.weight_decay = float(weight_decay)
        self.unroll_lr = None if unroll_lr is None else float(unroll_lr)
        if int(interval) < 1:
            raise ValueError(f'DynaKDSearchHook: interval={interval!r} must be >= 1')
        self.interval = int(interval)
        self.begin_epoch = int(begin_epoch)
        collate_fn = dict(collate_fn or dict(type='default_collate'))
        collate_type = collate_fn.pop('type')
        fn = FUNCTIONS.get(collate_type) if isinstance(collate_type, str) else collate_type
        if fn is None:
            raise KeyError(f'DynaKDSearchHook: unknown collate_fn {collate_type!r}')
        self.collate = (lambda batch: fn(batch, **collate_fn)) if collate_fn else fn
        self.dataset = None
        self.optimizer = None
        self.history: List[dict] = []
        self.last_val_loss = None

    # --- set-up ---
    @staticmethod
    def distiller(runner):
        model = unwrap(runner.model)
        pool = getattr(model, 'pool', None)
        if pool is None:
            raise ValueError('DynaKDSearchHook needs a Distiller with a teacher pool: '
                             "teachers=[...] and pool=dict(mode='sample')")
        if pool.mode != 'sample':
            raise ValueError(f"DynaKDSearchHook needs pool=dict(mode='sample'); the pool's mode "
                             f'is {pool.mode!r} (the w-step samples one teacher)')
        return model

    def before_run(self, runner) -> None:
        if getattr(runner, 'distributed', False):
            raise RuntimeError('DynaKDSearchHook runs in one process: the theta-step is not '
                               'synchronised across ranks')
        model = self.distiller(runner)
        theta = model.pool.theta.detach()
        if bool((theta <= 0).any()):
            zero = [n for n, p in zip(model.pool.names, theta.tolist()) if p <= 0]
            raise ValueError(f'DynaKDSearchHook: members {zero} have theta = 0, which the '
                             f'search cannot move (softmax of -inf); start from theta > 0, '
                             f'e.g. pool.theta=None (uniform)')
        self.optimizer = torch.optim.Adam([model.pool.theta_logits], lr=self.theta_lr,
                                          betas=self.betas, weight_decay=self.weight_decay)
        if isinstance(self.dataset_cfg, dict):
            self.dataset = DATASETS.build(self.dataset_cfg)
        else:
            self.dataset = self.dataset_cfg
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        if len(self.dataset) == 0:
            raise ValueError('DynaKDSearchHook: the validation data set is empty')

    # --- the theta-step ---
    def val_batch(self, seed: int, iteration: int):
        """The validation batch of ``iteration``: ``batch_size`` items drawn without
        replacement by a generator seeded with ``(seed, iteration)``."""
        generator = torch.Generator().manual_seed(val_batch_seed(seed, iteration))
        order = torch.randperm(len(self.dataset), generator=generator)
        items = [self.dataset[int(i)] for i in order[:self.batch_size]]
        return self.collate(items)

    def unroll_step(self, runner) -> float:
        if self.unroll_lr is not None:
            return self.unroll_lr
        return float(runner.optim_wrapper.get_lr()['lr'][0])

    def theta_step(self, model, train_batch, val_batch, lr: float) -> float:
        """One Adam step of ``theta_logits`` on the unrolled validation loss; returns it."""
        from kdzoo.models.pool import unrolled_validation_loss
        theta = model.pool.theta_logits
        train = model.data_preprocessor(train_batch, True)
        val = model.data_preprocessor(val_batch, False)
        theta.requires_grad_(True)
        try:
            with torch.enable_grad():
                loss = unrolled_validation_loss(model, train, val, lr)
                grad, = torch.autograd.grad(loss, theta)
            self.optimizer.zero_grad(set_to_none=True)
            theta.grad = grad
            self.optimizer.step()
        finally:
            theta.grad = None  # the main optimizer holds theta too: it must see no gradient
            theta.requires_grad_(False)
        return float(loss.detach())

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.epoch < self.begin_epoch or runner.iter % self.interval:
            return
        model = self.distiller(runner)
        val_batch = self.val_batch(runner.seed, runner.iter)
        self.last_val_loss = self.theta_step(model, data_batch, val_batch,
                                             self.unroll_step(runner))
        hub = runner.message_hub
        hub.update_scalar('train/dynakd_val_loss', self.last_val_loss)
        for name, p in model.pool.theta_dict().items():
            hub.update_scalar(f'train/theta_{name}', p)

    # --- logging, checkpoints ---
    def after_train_epoch(self, runner) -> None:
        model = self.distiller(runner)
        theta = model.pool.theta_dict()
        counts = model.pool.take_counts()
        self.history.append(dict(epoch=runner.epoch + 1, iter=runner.iter, theta=theta,
                                 draws=counts, val_loss=self.last_val_loss))
        shown = ', '.join(f'{n}={p:.4f}' for n, p in theta.items())
        runner.logger.info(f'DynaKD theta after epoch {runner.epoch + 1}: {shown} '
                           f'(draws this epoch: {counts})')
        if runner.rank == 0:
            with open(osp.join(runner.work_dir, 'theta.json'), 'w') as f:
                json.dump(dict(members=model.pool.names, theta=theta, history=self.history),
                          f, indent=1)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['dynakd'] = dict(optimizer=self.optimizer.state_dict(),
                                    history=self.history)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('dynakd')
        cfg = getattr(runner, 'cfg', None) or {}
        if state is None or not cfg.get('resume', False):
            return  # weights for a new run (load_from): the search starts afresh
        self.optimizer.load_state_dict(state['optimizer'])
        self.history = list(state.get('history', []))


__all__ = ['HeldOutSplit', 'held_out_indices', 'val_batch_seed', 'DynaKDSearchHook']
