"""Randomness that a resumed run reproduces, on the main-process side.

MMEngine seeds the RNGs once when the Runner starts; a run resumed from epoch ``E``'s
checkpoint is seeded again, so its model-side draws (dropout, a sampled teacher, a batch
mix in the data preprocessor) would not continue the uninterrupted run's streams.
:class:`StepSeedHook` seeds Python's ``random``, numpy and torch (CPU and CUDA) before every
training iteration from :func:`kdzoo.datasets.step_seed` ``(seed, iteration)``, so each
iteration's draws depend only on the run seed and the iteration, wherever the run restarted.
The data side is seeded per sample by :class:`kdzoo.datasets.SeededSampler`.

kdzoo's default hooks (``KDZOO_DEFAULT_HOOKS``) are on in every training run:
``configs/_base_/default_runtime.py`` lists them under ``default_hooks`` and
:func:`with_kdzoo_default_hooks` (called by ``tools/train.py``) adds those a config lacks;
``default_hooks.<key>=None`` turns one off.
"""
import copy

import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from kdzoo.datasets.seeding import SeededInfiniteSampler, SeededSampler, seed_rngs, step_seed
from kdzoo.registry import HOOKS

#: kdzoo's hooks that every training run gets (``default_hooks.<key>``).
# Scoped names: they build whatever the config's default scope is (mmdet, mmseg, kdzoo).
KDZOO_DEFAULT_HOOKS = dict(
    finite_loss=dict(type='kdzoo.FiniteLossHook'),
    step_seed=dict(type='kdzoo.StepSeedHook'),
)
#: The default hooks MMEngine's Runner knows; it removes these itself when set to None.
MMENGINE_DEFAULT_HOOKS = ('runtime_info', 'timer', 'sampler_seed', 'logger', 'param_scheduler',
                          'checkpoint')


def with_kdzoo_default_hooks(cfg: Config, train: bool = True) -> Config:
    """Add :data:`KDZOO_DEFAULT_HOOKS` that ``cfg.default_hooks`` lacks (``train=True``) and
    drop the entries set to ``None`` that MMEngine's Runner does not know (it only accepts
    ``None`` for its own default hooks), so ``default_hooks.finite_loss=None`` turns the
    check off."""
    hooks = cfg.get('default_hooks')
    hooks = {} if hooks is None else dict(hooks)
    if train:
        for key, hook in KDZOO_DEFAULT_HOOKS.items():
            hooks.setdefault(key, copy.deepcopy(hook))
    cfg.default_hooks = {k: v for k, v in hooks.items()
                         if v is not None or k in MMENGINE_DEFAULT_HOOKS}
    return cfg


@HOOKS.register_module()
class StepSeedHook(Hook):
    """Seed the main process before every training iteration from
    :func:`~kdzoo.datasets.step_seed` ``(runner.seed, runner.iter, rank)`` (the rank only with
    ``randomness.diff_rank_seed=True``; otherwise every rank draws alike, as MMEngine seeds
    them alike). Python's ``random``, numpy's global RNG and torch's RNGs (CPU, and every
    CUDA device once CUDA is in use) are seeded, so a resumed run draws what an
    uninterrupted one drew.

    Before training it also warns when the train sampler and dataset are not both seeded per
    sample, and hands a resumed run's seed to a :class:`~kdzoo.datasets.SeededSampler` when
    ``randomness.seed`` is ``None`` (:meth:`resume_sampler_seed`)."""
    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        loader = runner.train_dataloader
        sampler = getattr(getattr(loader, 'batch_sampler', None), 'sampler', None)
        self.check_seeding(runner, sampler, getattr(loader, 'dataset', None))
        self.resume_sampler_seed(runner, sampler)

    @staticmethod
    def check_seeding(runner, sampler, dataset) -> None:
        """Warn when only one of the train sampler and dataset is seeded per sample: the
        augmentation then is not a function of (seed, epoch, index), and a resumed run
        differs from an uninterrupted one."""
        seeded_sampler = isinstance(sampler, (SeededSampler, SeededInfiniteSampler))
        seeded_dataset = hasattr(dataset, 'get_seeded')
        if seeded_sampler and not seeded_dataset:
            runner.logger.warning(
                f'the train dataset ({type(dataset).__name__}) does not seed its pipeline per '
                "sample; wrap it in dict(type='SeededDataset', dataset=...) so that a resumed "
                'run augments as an uninterrupted one')
        elif seeded_dataset and not seeded_sampler:
            runner.logger.warning(
                f'the train sampler ({type(sampler).__name__}) passes plain indices, so the '
                'pipeline is not seeded per sample; use SeededSampler (SeededInfiniteSampler '
                'for iteration-based loops) so that a resumed run augments as an '
                'uninterrupted one')

    @staticmethod
    def resume_sampler_seed(runner, sampler) -> None:
        """With ``randomness.seed=None`` MMEngine drew a new seed for this process and built
        the train sampler with it before a resumed run read the checkpoint's seed back into
        ``runner.seed``; give a :class:`~kdzoo.datasets.SeededSampler` that was built with
        the Runner's seed (no ``seed`` of its own) the resumed seed, so it shuffles and
        augments as the interrupted run did."""
        cfg = runner.cfg or {}
        randomness = cfg.get('randomness') or {}
        loader_cfg = cfg.get('train_dataloader') or {}
        if (randomness.get('seed') is not None or randomness.get('diff_rank_seed', False)
                or (loader_cfg.get('sampler') or {}).get('seed') is not None):
            return
        if isinstance(sampler, SeededSampler) and sampler.seed != runner.seed:
            runner.logger.info(f'SeededSampler: seed {sampler.seed} -> {runner.seed} (the '
                               'run seed read from the resumed checkpoint)')
            sampler.seed = runner.seed

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        randomness = (runner.cfg.get('randomness') or {}) if runner.cfg else {}
        rank = int(runner.rank) if randomness.get('diff_rank_seed', False) else 0
        seed = step_seed(int(runner.seed) % 2**64, int(runner.iter), rank)
        seed_rngs(seed)
        if torch.cuda.is_initialized():
            torch.cuda.manual_seed_all(seed)


__all__ = ['StepSeedHook', 'KDZOO_DEFAULT_HOOKS', 'with_kdzoo_default_hooks']
