"""StepSeedHook: the main process's draws in an iteration depend only on the run seed and
the iteration, so a resumed run draws what an uninterrupted run drew."""
import random

import numpy as np
import torch
from mmengine.config import Config

from kdzoo.engine import KDZOO_DEFAULT_HOOKS, StepSeedHook, with_kdzoo_default_hooks

from engine_helpers import fake_runner


def draws():
    return random.random(), float(np.random.rand()), torch.rand(1).item()


def test_draws_of_an_iteration_do_not_depend_on_what_came_before(tmp_path):
    hook, runner = StepSeedHook(), fake_runner(tmp_path, randomness=dict(seed=0))
    uninterrupted = []
    for i in range(3):
        runner.iter = i
        hook.before_train_iter(runner, i)
        uninterrupted.append(draws())
    assert len(set(uninterrupted)) == 3
    torch.manual_seed(99)  # a resumed process: other RNG history
    np.random.seed(99)
    runner.iter = 2
    hook.before_train_iter(runner, 2)
    assert draws() == uninterrupted[2]
    runner.seed = 1
    hook.before_train_iter(runner, 2)
    assert draws() != uninterrupted[2]


def test_ranks_draw_alike_unless_diff_rank_seed(tmp_path):
    hook = StepSeedHook()
    out = {}
    for diff in (False, True):
        for rank in (0, 1):
            runner = fake_runner(tmp_path, randomness=dict(seed=0, diff_rank_seed=diff))
            runner.rank, runner.iter = rank, 5
            hook.before_train_iter(runner, 0)
            out[diff, rank] = draws()
    assert out[False, 0] == out[False, 1] and out[True, 0] != out[True, 1]


def test_kdzoo_default_hooks_are_added_and_can_be_turned_off():
    cfg = Config(dict(default_hooks=dict(logger=dict(type='LoggerHook'), checkpoint=None)))
    hooks = with_kdzoo_default_hooks(cfg).default_hooks
    assert set(hooks) == {'logger', 'checkpoint'} | set(KDZOO_DEFAULT_HOOKS)
    assert hooks['checkpoint'] is None  # MMEngine's own: MMEngine drops it
    cfg = Config(dict(default_hooks=dict(finite_loss=None)))
    assert set(with_kdzoo_default_hooks(cfg).default_hooks) == {'step_seed'}
    assert 'finite_loss' not in with_kdzoo_default_hooks(
        Config(dict(default_hooks=dict(finite_loss=None))), train=False).default_hooks
    shipped = Config.fromfile('configs/_base_/default_runtime.py').default_hooks
    assert shipped.finite_loss.type == 'kdzoo.FiniteLossHook'
    assert shipped.step_seed.type == 'kdzoo.StepSeedHook'


def test_a_seeded_sampler_gets_the_resumed_seed_when_the_config_has_none(tmp_path):
    """randomness.seed=None: MMEngine builds the sampler with this process's new seed,
    then a resume reads the interrupted run's seed into runner.seed."""
    from kdzoo.datasets import SeededSampler
    sampler = SeededSampler(list(range(8)), seed=111)
    runner = fake_runner(tmp_path, randomness=dict(seed=None),
                         train_dataloader=dict(sampler=dict(type='SeededSampler')))
    runner.seed = 222
    StepSeedHook().resume_sampler_seed(runner, sampler)
    assert sampler.seed == 222
    fixed = fake_runner(tmp_path, randomness=dict(seed=0))  # a fixed seed: left alone
    fixed.seed, sampler.seed = 222, 0
    StepSeedHook().resume_sampler_seed(fixed, sampler)
    assert sampler.seed == 0


def test_a_half_seeded_setup_is_warned_about(tmp_path, caplog, fmnist_root):
    from types import SimpleNamespace

    from mmengine.dataset import DefaultSampler, RepeatDataset

    from kdzoo.datasets import FashionMNIST, SeededDataset, SeededSampler
    dataset = FashionMNIST(split='train', data_root=fmnist_root, indices=4)
    runner = fake_runner(tmp_path, randomness=dict(seed=0))
    cases = [(DefaultSampler(dataset, seed=0), dataset, 'passes plain indices'),
             (SeededSampler(dataset, seed=0), RepeatDataset(dataset, times=2),
              'does not seed its pipeline'),
             (SeededSampler(dataset, seed=0), dataset, None),
             (SeededSampler(dataset, seed=0), SeededDataset(RepeatDataset(dataset, times=2)),
              None)]
    for sampler, data, warning in cases:
        caplog.clear()
        runner.train_dataloader = SimpleNamespace(
            dataset=data, batch_sampler=SimpleNamespace(sampler=sampler))
        with caplog.at_level('WARNING', logger='engine-test'):
            StepSeedHook().before_train(runner)
        messages = ' '.join(r.getMessage() for r in caplog.records)
        assert (warning in messages) if warning else not messages
