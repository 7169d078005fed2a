"""Successive halving with loss suppression, and the proxy hooks: loss suppression on
synthetic loss sequences, good-enough early stopping, the rung loop with a fake evaluation
(promotions, suppression, probabilities, resume), and one real tiny search."""
import csv
import glob
import json
import logging
import math
import os
import os.path as osp
import random
import subprocess
import sys
from types import SimpleNamespace

import optuna
import pytest
from mmengine.config import Config
from mmengine.logging import MessageHub
from optuna.trial import TrialState

from kdzoo.engine import EarlyStopOnGoodEnoughHook, LossSuppressed, LossSuppressionHook
from kdzoo.search import (SearchLoop, SearchSpace, TrialBook, TrialResult, apply_proxy,
                          build_searcher, open_storage, rung_summary)
from kdzoo.search.halving import rung_schedule
from kdzoo.search.operations import (ELIMINATED_ATTR, PROBABILITIES_ATTR, normalised,
                                     operation_weights, prior_weights, sample_path)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- LossSuppressionHook ----------------------------------------------------------------------
def fake_runner(work_dir, hub_name='sh-test'):
    return SimpleNamespace(work_dir=str(work_dir), iter=0, epoch=0, rank=0,
                           logger=logging.getLogger('sh-test'),
                           message_hub=MessageHub.get_instance(hub_name),
                           train_loop=SimpleNamespace(stop_training=False, max_epochs=5))


def feed(hook, runner, losses, via_hub=False):
    """Feed ``losses`` one iteration at a time; the iteration (1-based) that stopped it."""
    for i, loss in enumerate(losses):
        runner.iter = i
        try:
            if via_hub:
                runner.message_hub.update_scalar('train/loss', loss)
                hook.after_train_iter(runner, i, outputs=None)
            else:
                hook.after_train_iter(runner, i, outputs=dict(loss=loss, loss_kd=0.1))
        except LossSuppressed:
            return i + 1
    return None


def read_status(work_dir, name='suppression.json'):
    with open(osp.join(work_dir, name)) as f:
        return json.load(f)


def test_suppression_detects_nan(tmp_path):
    hook = LossSuppressionHook(window=3, patience=6)
    assert feed(hook, fake_runner(tmp_path), [2.0, 1.9, math.nan, 1.0]) == 3
    info = read_status(tmp_path)
    assert info['kind'] == 'non-finite' and info['iter'] == 3 and info['loss'] == 'nan'
    assert info['recent_losses'] == [2.0, 1.9]


def test_suppression_detects_a_non_finite_loss_term(tmp_path):
    hook = LossSuppressionHook(window=3)
    runner = fake_runner(tmp_path)
    with pytest.raises(LossSuppressed, match='loss_kd=inf'):
        hook.after_train_iter(runner, 0, outputs=dict(loss=1.0, loss_kd=math.inf))


def test_suppression_detects_explosion(tmp_path):
    hook = LossSuppressionHook(window=3, explode_factor=10.0, patience=None)
    assert feed(hook, fake_runner(tmp_path), [2.0, 2.2, 1.8, 1.5, 19.0, 25.0, 1.0]) == 6
    info = read_status(tmp_path)
    assert info['kind'] == 'exploded' and info['loss'] == 25.0
    assert info['first_window_mean'] == pytest.approx(2.0)


def test_suppression_detects_no_decrease_through_the_message_hub(tmp_path):
    hook = LossSuppressionHook(window=3, patience=6)
    losses = [2.0, 2.1, 1.9, 2.0, 2.05, 2.0, 1.0]
    assert feed(hook, fake_runner(tmp_path, 'sh-hub'), losses, via_hub=True) == 6
    info = read_status(tmp_path)
    assert info['kind'] == 'no decrease' and info['iter'] == 6
    assert info['last_window_mean'] >= info['first_window_mean']


def test_suppression_max_loss(tmp_path):
    hook = LossSuppressionHook(window=5, max_loss=100.0)
    assert feed(hook, fake_runner(tmp_path), [5.0, 150.0]) == 2
    assert read_status(tmp_path)['kind'] == 'too high'


def test_suppression_does_not_fire_on_a_healthy_run(tmp_path):
    hook = LossSuppressionHook(window=5, explode_factor=3.0, patience=10, min_decrease=0.05)
    rng = random.Random(0)
    losses = [2.3 * 0.97 ** i * (1 + 0.1 * rng.uniform(-1, 1)) for i in range(200)]
    assert feed(hook, fake_runner(tmp_path), losses) is None
    assert not osp.exists(tmp_path / 'suppression.json')


def test_suppression_state_survives_a_checkpoint(tmp_path):
    hook = LossSuppressionHook(window=3, explode_factor=10.0, patience=None)
    feed(hook, fake_runner(tmp_path), [1.0, 1.0, 1.0, 0.5])
    checkpoint = {}
    hook.before_save_checkpoint(None, checkpoint)
    resumed = LossSuppressionHook(window=3, explode_factor=10.0, patience=None)
    resumed.after_load_checkpoint(None, checkpoint)
    assert resumed.first_mean == 1.0 and resumed.seen == 4
    assert feed(resumed, fake_runner(tmp_path), [0.4, 12.0]) == 2  # 12 > 10 x 1.0


# --- EarlyStopOnGoodEnoughHook ----------------------------------------------------------------
def test_good_enough_threshold_and_patience(tmp_path):
    runner = fake_runner(tmp_path)
    hook = EarlyStopOnGoodEnoughHook(metric='accuracy/top1', threshold=60.0)
    hook.after_val_epoch(runner, {'accuracy/top1': 50.0})
    assert not runner.train_loop.stop_training
    hook.after_val_epoch(runner, {'accuracy/top1': 61.0})
    assert runner.train_loop.stop_training
    assert read_status(tmp_path, 'early_stop.json')['reason'].startswith('good enough')

    runner = fake_runner(tmp_path / 'p')
    os.makedirs(runner.work_dir)
    hook = EarlyStopOnGoodEnoughHook(patience=2, min_delta=0.5)
    for value in (50.0, 50.2, 49.0):
        assert not runner.train_loop.stop_training
        hook.after_val_epoch(runner, {'accuracy/top1': value})
    assert runner.train_loop.stop_training
    assert 'no improvement' in read_status(runner.work_dir, 'early_stop.json')['reason']
    with pytest.raises(ValueError):
        EarlyStopOnGoodEnoughHook()


def test_proxy_turns_into_custom_hooks():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/fashion_mnist/kd_fmnist.py'))
    cfg = apply_proxy(cfg, dict(max_epochs=2, suppression=dict(window=5),
                                good_enough=dict(threshold=90.0, patience=2)))
    types = [h['type'] for h in cfg.custom_hooks]
    # scoped, so they build under an mmdet / mmseg default scope too
    assert types == ['StudentCheckpointHook', 'kdzoo.LossSuppressionHook',
                     'kdzoo.EarlyStopOnGoodEnoughHook']
    assert cfg.custom_hooks[1]['window'] == 5 and cfg.custom_hooks[2]['threshold'] == 90.0
    cfg = apply_proxy(cfg, dict(suppression=True))  # replaced, not added twice
    assert [h['type'] for h in cfg.custom_hooks].count('kdzoo.LossSuppressionHook') == 1
    with pytest.raises(KeyError, match='unknown keys'):
        apply_proxy(cfg, dict(good_enuf=dict(threshold=1)))


# --- the rung loop, with a fake evaluation ----------------------------------------------------
SPACE = dict(terms=[dict(student='fc', teacher='fc', input_rank=2,
                         transform_slots=[['no', 'tanh', 'norm_C']],
                         distance=['kl', 'l2', 'cosine'], weight=[1.0, 5.0, 1e30],
                         tau=[1.0, 4.0])])


def test_rung_schedule():
    assert rung_schedule(8, 2, 1, 4) == [(8, 1), (4, 2), (2, 4)]
    assert rung_schedule(4, 2, 1, 2) == [(4, 1), (2, 2)]
    assert rung_schedule(9, 3, 1, 100) == [(9, 1), (3, 3), (1, 9)]
    assert rung_schedule(4, 1.5, 2, 5) == [(4, 2), (2, 3), (1, 5)]
    with pytest.raises(ValueError):
        rung_schedule(4, 1, 1, 2)


class FakeTraining:
    """Value = a fixed score per choice + the budget; weight 1e30 is suppressed. Keeps the
    epochs each candidate has trained so resumes can be checked."""

    def __init__(self, interrupt_at=None):
        self.calls, self.epochs = [], {}
        self.interrupt_at = interrupt_at

    def __call__(self, job, heartbeat):
        candidate, params, budget, resume = job.work, job.params, job.budget, job.resume
        self.calls.append((candidate, budget, resume))
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        start = self.epochs.get(candidate, 0) if resume else 0
        assert start < budget
        self.epochs[candidate] = budget
        if params['kd0.weight'] == 1e30:
            return TrialResult(error='suppressed: non-finite: loss=nan',
                               attrs=dict(suppressed=dict(kind='non-finite')))
        score = {'kl': 3, 'l2': 1, 'cosine': 2}[params['kd0.distance']] \
            + {'no': 0.0, 'tanh': 0.5, 'norm_C': 0.25}[params['kd0.transform0']] \
            + params['kd0.tau'] / 10
        return TrialResult(value=score + budget)


def fake_search(book, searcher, space, fake, n_trials=8):
    loop = SearchLoop(book, space, searcher, fake, n_trials=n_trials, log=None)
    loop.run()
    return loop


def new_study(searcher, space, storage=None):
    storage = optuna.storages.InMemoryStorage() if storage is None else \
        open_storage(storage, '.')
    study = optuna.create_study(direction='maximize', sampler=searcher.sampler(space),
                                storage=storage, study_name='sh', load_if_exists=True)
    return TrialBook(study, storage)


def test_rung_loop_promotes_the_best_suppresses_and_lowers_probabilities():
    space = SearchSpace.from_config(SPACE)
    searcher = build_searcher(dict(type='successive_halving', n_candidates=8, eta=2,
                                   min_budget=1, max_budget=4, suppression_factor=0.5,
                                   probabilities={'kd0.weight': [1, 1, 2]}), seed=0)
    book = new_study(searcher, space)
    study = book.study
    study.enqueue_trial({'kd0.weight': 1e30, 'kd0.distance': 'kl'})  # a warm start
    fake = FakeTraining()
    fake_search(book, searcher, space, fake)
    summary = rung_summary(study)
    rung0 = study.trials[:8]
    assert rung0[0].user_attrs['suppressed'] and rung0[0].params['kd0.weight'] == 1e30
    complete0 = sorted((t for t in rung0 if t.state == TrialState.COMPLETE),
                       key=lambda t: -t.value)
    assert all(t.user_attrs.get('suppressed') for t in rung0 if t.state != TrialState.COMPLETE)
    assert len(complete0) >= 2  # (seed 0) so that the halving has three rungs
    assert [(r['rung'], r['budget'], len(r['trials'])) for r in summary] == \
        [(0, 1, 8), (1, 2, min(4, len(complete0))), (2, 4, 2)]
    promoted = {t.number for t in complete0[:4]}
    assert {r['candidate'] for r in summary[1]['trials']} == promoted
    # survivors resume: every later rung continues the candidate's training
    assert all(resume for _, _, resume in fake.calls[8:])
    assert all(not resume for _, _, resume in fake.calls[:8])
    rung1 = sorted(summary[1]['trials'], key=lambda r: -r['value'])
    assert set(study.user_attrs[ELIMINATED_ATTR]) == \
        {t.number for t in complete0[4:]} | {r['candidate'] for r in rung1[2:]}
    assert {r['candidate'] for r in summary[2]['trials']} == {r['candidate'] for r in rung1[:2]}
    best = searcher.best_trial(study)
    assert best.user_attrs['sh_budget'] == 4 and best.user_attrs['sh_rung'] == 2
    # the suppressed candidate's operations were demoted for the samples after it
    probs = study.user_attrs[PROBABILITIES_ATTR]
    suppressed = [t for t in study.trials if t.user_attrs.get('suppressed')]
    n_sup = len(suppressed)
    assert n_sup >= 1
    assert probs['kd0.weight']['1e+30'] < 0.5  # prior: 2 / (1 + 1 + 2)
    w = operation_weights(space, study.trials, prior_weights(space, {'kd0.weight': [1, 1, 2]}),
                          0.5, 1.0, [], ('transform', 'distance', 'weight', 'tau'))
    assert w['kd0.weight'][2] == 2 * 0.5 ** n_sup
    second = study.trials[1]
    assert second.user_attrs['sh_sampled_with']['kd0.weight'] == \
        pytest.approx(probs_after(space, study.trials[:1])['kd0.weight'][
            str(second.params['kd0.weight'])], abs=1e-6)


def probs_after(space, trials):
    return normalised(operation_weights(space, trials,
                                        prior_weights(space, {'kd0.weight': [1, 1, 2]})),
                      space)


def test_new_samples_follow_the_lowered_probabilities():
    space = SearchSpace.from_config(SPACE)
    priors = prior_weights(space)
    rng = random.Random(0)
    lowered = dict(priors, **{'kd0.weight': [1.0, 1.0, 0.1]})
    draws = [space.labels_of(sample_path(space, lowered, rng))['kd0.weight']
             for _ in range(600)]
    share = draws.count(1e30) / len(draws)
    assert 0.02 < share < 0.09  # 0.1 / 2.1 = 0.048 (uniform would be 0.33)


def test_rung_loop_resumes_after_an_interruption(tmp_path):
    space = SearchSpace.from_config(SPACE)
    storage = f'sqlite:///{tmp_path}/sh.db'
    kwargs = dict(type='successive_halving', n_candidates=4, eta=2, min_budget=1,
                  max_budget=2)
    reference = FakeTraining()
    searcher = build_searcher(kwargs, seed=0)
    fake_search(new_study(searcher, space, f'sqlite:///{tmp_path}/ref.db'), searcher, space,
                reference)

    searcher = build_searcher(kwargs, seed=0)
    book = new_study(searcher, space, storage)
    study = book.study
    killed = FakeTraining(interrupt_at=5)  # the first rung-1 run is interrupted
    with pytest.raises(KeyboardInterrupt):
        fake_search(book, searcher, space, killed)
    assert study.trials[4].state == TrialState.FAIL
    assert study.trials[4].system_attrs['kdzoo:interrupted']
    searcher = build_searcher(kwargs, seed=0)
    again = FakeTraining()
    again.epochs = dict(killed.epochs)
    fake_search(new_study(searcher, space, storage), searcher, space, again)
    study = optuna.load_study(study_name='sh', storage=storage)
    retry = [t for t in study.trials if t.user_attrs.get('retry_of') == 4]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE
    assert retry[0].user_attrs['sh_rung'] == 1
    assert again.calls[0][2] is True  # the retry resumed its candidate
    done = [(t.user_attrs['sh_candidate'], t.user_attrs['sh_budget'], t.value)
            for t in study.trials if t.state == TrialState.COMPLETE]
    ref = optuna.load_study(study_name='sh', storage=f'sqlite:///{tmp_path}/ref.db')
    assert sorted(done) == sorted((t.user_attrs['sh_candidate'], t.user_attrs['sh_budget'],
                                   t.value) for t in ref.trials
                                  if t.state == TrialState.COMPLETE)


WORKER = """
import json, os, sys, time
import optuna
from kdzoo.search import SearchLoop, SearchSpace, TrialBook, TrialResult, build_searcher
from kdzoo.search import open_storage
optuna.logging.set_verbosity(optuna.logging.WARNING)
storage, log = open_storage(sys.argv[1], '.'), sys.argv[2]
space = SearchSpace.from_config(dict(terms=[dict(
    student='s', teacher='t', transform_slots=[['no', 'tanh', 'norm_C']],
    distance=['kl', 'l2', 'cosine'], weight=[1.0, 5.0], tau=[1.0, 4.0])]))
searcher = build_searcher(dict(type='successive_halving', n_candidates=8, eta=2,
                               min_budget=1, max_budget=4, brackets=2, poll_interval=0.05),
                          seed=0)
study = optuna.create_study(direction='maximize', sampler=searcher.sampler(space),
                            storage=storage, study_name='sh2', load_if_exists=True)

def train(job, heartbeat):
    candidate, params, budget, resume = job.work, job.params, job.budget, job.resume
    time.sleep(0.3)  # long enough that both workers join before the rungs are done
    with open(log, 'a') as f:
        f.write(json.dumps([os.getpid(), candidate, budget, resume]) + '\\n')
    score = {'kl': 3, 'l2': 1, 'cosine': 2}[params['kd0.distance']] \\
        + {'no': 0.0, 'tanh': 0.5, 'norm_C': 0.25}[params['kd0.transform0']] \\
        + params['kd0.weight'] / 10 + params['kd0.tau'] / 100
    return TrialResult(value=score + budget)

SearchLoop(TrialBook(study, storage), space, searcher, train, n_trials=8, log=None).run()
"""


@pytest.mark.parametrize('backend', ['journal', 'postgresql'])
def test_successive_halving_with_two_workers_on_one_storage(backend, tmp_path, request):
    """Two workers share the rungs: each promotion runs once, in either worker, resuming
    the candidate; a worker waits while the rung it needs is trained by the other."""
    script = tmp_path / 'worker.py'
    script.write_text(WORKER)
    url = (str(tmp_path / 'search.journal') if backend == 'journal' else
           request.getfixturevalue('postgres_url'))
    log = str(tmp_path / 'calls.jsonl')
    env = dict(ENV, PYTHONPATH=ROOT)
    storage = open_storage(url, str(tmp_path))
    optuna.create_study(direction='maximize', storage=storage, study_name='sh2')
    workers = [subprocess.Popen([sys.executable, str(script), url, log], cwd=ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for _ in range(2)]
    for w in workers:
        out, _ = w.communicate(timeout=300)
        assert w.returncode == 0, out[-3000:]
    study = optuna.load_study(study_name='sh2', storage=storage)
    calls = [json.loads(line) for line in open(log)]
    assert len({pid for pid, *_ in calls}) == 2          # both workers trained candidates
    assert all(resume == (budget > 1) for _, _, budget, resume in calls)
    pruned = [t.user_attrs.get('pruned_reason', '') for t in study.trials
              if t.state == TrialState.PRUNED]
    assert all(('taken by' in r or 'already has' in r or 'duplicate' in r) for r in pruned)
    assert not [t for t in study.trials if t.state in (TrialState.FAIL, TrialState.RUNNING,
                                                       TrialState.WAITING)]
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    roles = [(t.user_attrs['sh_bracket'], t.user_attrs['sh_rung'],
              t.user_attrs['sh_candidate']) for t in done]
    assert len(roles) == len(set(roles))                 # no rung evaluated twice
    assert len(calls) == len(done)
    for bracket in range(2):      # 8 x 1 epoch, the best 4 x 2 epochs, the best 2 x 4 epochs
        rungs = [[t for t in done if t.user_attrs['sh_bracket'] == bracket
                  and t.user_attrs['sh_rung'] == r] for r in range(3)]
        assert [len(r) for r in rungs] == [8, 4, 2]
        for lower, upper, keep in ((rungs[0], rungs[1], 4), (rungs[1], rungs[2], 2)):
            best = sorted(lower, key=lambda t: (-t.value, t.number))[:keep]
            assert {t.user_attrs['sh_candidate'] for t in best} == \
                {t.user_attrs['sh_candidate'] for t in upper}
    first = {json.dumps(t.params, sort_keys=True) for t in done
             if t.user_attrs['sh_rung'] == 0}
    assert len(first) == 16                              # 16 distinct candidates


# --- real training on the tiny data set -------------------------------------------------------
def data_options(fmnist_root):
    return [f'train_dataloader.dataset.data_root={fmnist_root}',
            f'val_dataloader.dataset.data_root={fmnist_root}',
            f'test_dataloader.dataset.data_root={fmnist_root}',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
            'train_dataloader.batch_size=32', 'default_hooks.logger.interval=1']


def run(cmd):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def test_good_enough_ends_training_before_max_epochs(tmp_path, fmnist_root):
    config = tmp_path / 'good_enough.py'
    config.write_text(
        f"_base_ = ['{ROOT}/configs/fashion_mnist/student_fmnist.py']\n"
        "custom_hooks = [dict(type='EarlyStopOnGoodEnoughHook', metric='accuracy/top1',\n"
        "                     threshold=0.0)]\n"
        "train_cfg = dict(max_epochs=3)\n")
    work = tmp_path / 'out'
    run([sys.executable, 'tools/train.py', str(config), '--work-dir', str(work),
         '--cfg-options', *data_options(fmnist_root), 'train_dataloader.dataset.indices=64'])
    status = read_status(work, 'early_stop.json')
    assert status['epoch'] == 1 and status['max_epochs'] == 3
    assert osp.isfile(work / 'epoch_1.pth') and not osp.isfile(work / 'epoch_2.pth')


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory, fmnist_root):
    work = tmp_path_factory.mktemp('sh_teacher')
    run([sys.executable, 'tools/train.py', 'configs/fashion_mnist/teacher_fmnist.py',
         '--work-dir', str(work), '--cfg-options', *data_options(fmnist_root),
         'train_dataloader.dataset.indices=64', 'train_cfg.max_epochs=1'])
    return str(work / 'epoch_1.pth')


def test_real_successive_halving_resumes_survivors_and_suppresses(tmp_path, teacher_ckpt,
                                                                   fmnist_root):
    term = dict(student='backbone.fc', teacher='backbone.fc', input_rank=2,
                transform_slots=[['no', 'softmax_C', 'norm_C'], ['no', 'tanh']],
                distance=['kl', 'l2', 'cosine'], weight=[0.5, 1.0, 1e30], tau=[1.0, 4.0])
    searcher = dict(type='successive_halving', n_candidates=4, eta=2, min_budget=1,
                    max_budget=2, probabilities={'kd0.weight': [1, 1, 0.01]})
    config = tmp_path / 'sh.py'
    config.write_text('\n'.join([
        f"_base_ = ['{ROOT}/configs/fashion_mnist/kd_fmnist.py']",
        f'search = dict(searcher={searcher!r}, seed=0,',
        f'    space=dict(terms=[{term!r}]),',
        "    proxy=dict(train_indices=64, max_epochs=1),",
        "    enqueue=[{'kd0.weight': 1e30}])"]) + '\n')
    work = tmp_path / 'out'
    out = run([sys.executable, 'tools/search.py', str(config), '--work-dir', str(work),
               '--cfg-options', f'model.teacher_checkpoint={teacher_ckpt}',
               *data_options(fmnist_root)]).stdout
    assert 'SUPPRESSED' in out and out.count('COMPLETE') == 5, out
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(work / 'search.journal')))
    study = optuna.load_study(study_name='sh', storage=storage)
    first = study.trials[0]
    assert first.params['kd0.weight'] == 1e30 and first.state == TrialState.FAIL
    assert first.user_attrs['suppressed']['kind'] in ('non-finite', 'exploded')
    assert osp.isfile(work / 'trials' / '0' / 'suppression.json')
    probs = study.user_attrs[PROBABILITIES_ATTR]['kd0.weight']
    assert probs['1e+30'] < 0.01 / 2.01
    # the two survivors resumed their rung-0 checkpoints
    rung1 = [t for t in study.trials if t.user_attrs.get('sh_rung') == 1]
    assert len(rung1) == 2 and all(t.state == TrialState.COMPLETE for t in rung1)
    for t in rung1:
        trial_dir = work / 'trials' / str(t.user_attrs['sh_candidate'])
        log = (trial_dir / 'train_rung1.log').read_text()
        assert 'resumed epoch: 1' in log
        assert 'lr: 5.0000e-02' in log  # epoch 2 of the 2-epoch cosine, continued
        assert osp.isfile(trial_dir / 'epoch_2.pth')
        runs = sorted(glob.glob(str(trial_dir / '*' / 'vis_data' / 'scalars.json')))
        assert len(runs) == 2
        with open(runs[-1]) as f:
            epochs = {json.loads(line).get('epoch') for line in f} - {None}
        assert epochs == {2}  # epoch 1 was not trained again
        cfg = Config.fromfile(str(trial_dir / 'config.py'))
        assert cfg.train_cfg.max_epochs == 2
        assert cfg.param_scheduler[0].T_max == cfg.param_scheduler[0].end == 2
    with open(work / 'results.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['rung'] for r in rows] == ['0', '0', '0', '0', '1', '1']
    assert sorted(r['outcome'] for r in rows) == ['complete', 'complete', 'eliminated',
                                                  'promoted', 'promoted', 'suppressed']
    assert osp.isfile(work / 'halving.png') and osp.isfile(work / 'successive_halving.json')
    best = Config.fromfile(str(work / 'best_config.py'))
    assert best.train_cfg.max_epochs == 2
