"""tools/search.py end to end on tiny data: trial configs, results, re-running the best
config, failed trials, resume after SIGKILL, two workers on one SQLite or PostgreSQL storage."""
import csv
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import optuna
import pytest
from mmengine.config import Config
from optuna.trial import TrialState

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# Trials are child processes; one thread each keeps two shared cores usable.
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def data_options(fmnist_root):
    return [f'train_dataloader.dataset.data_root={fmnist_root}',
            f'val_dataloader.dataset.data_root={fmnist_root}',
            f'test_dataloader.dataset.data_root={fmnist_root}',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
            'train_dataloader.batch_size=32', 'default_hooks.logger.interval=1']


def run(cmd, env=None):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=env or ENV)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def last_val_top1(work_dir):
    scalars = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))[-1]
    with open(scalars) as f:
        rows = [json.loads(line) for line in f]
    return [r['accuracy/top1'] for r in rows if 'accuracy/top1' in r][-1]


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory, fmnist_root):
    """A 1-epoch teacher (resnet20 of kd_fmnist.py) on 64 images."""
    work = tmp_path_factory.mktemp('search_teacher')
    run([sys.executable, 'tools/train.py', 'configs/fashion_mnist/teacher_fmnist.py',
         '--work-dir', str(work), '--cfg-options', *data_options(fmnist_root),
         'train_dataloader.dataset.indices=64', 'train_cfg.max_epochs=1'])
    return str(work / 'epoch_1.pth')


def write_search_config(path, searcher, n_trials, space_terms, **extra):
    lines = [f"_base_ = ['{ROOT}/configs/fashion_mnist/kd_fmnist.py']",
             f'search = dict(searcher={searcher!r}, n_trials={n_trials}, seed=0,',
             f'    space=dict(terms={space_terms!r}),',
             '    proxy=dict(train_indices=64, max_epochs=1),']
    lines += [f'    {k}={v!r},' for k, v in extra.items()]
    lines.append(')')
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


LOGIT_TERM = dict(student='backbone.fc', teacher='backbone.fc', input_rank=2,
                  transform_slots=[['no', 'softmax_C', 'norm_C', 'satt'], ['no', 'tanh']],
                  distance=['kl', 'l2', 'cosine'], weight=[0.5, 1.0], tau=[1.0, 4.0])


def search_cmd(config, work_dir, teacher_ckpt, fmnist_root, *args):
    return [sys.executable, 'tools/search.py', config, '--work-dir', str(work_dir), *args,
            '--cfg-options', f'model.teacher_checkpoint={teacher_ckpt}',
            *data_options(fmnist_root)]


def load_study(work_dir, name, storage=None):
    storage = storage or optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(osp.join(work_dir, 'search.journal')))
    return optuna.load_study(study_name=name, storage=storage)


def param_key(trial):
    return tuple(sorted(trial.params.items()))


@pytest.fixture(scope='module')
def mcts_search(tmp_path_factory, teacher_ckpt, fmnist_root):
    work = tmp_path_factory.mktemp('search_mcts')
    config = write_search_config(work / 'mcts.py', dict(type='mcts', exploration=0.5), 4,
                                 [LOGIT_TERM])
    start = time.time()
    proc = run(search_cmd(config, work / 'out', teacher_ckpt, fmnist_root))
    return dict(work=work / 'out', proc=proc, seconds=time.time() - start)


def test_search_writes_trial_configs_results_and_plots(mcts_search):
    work, out = mcts_search['work'], mcts_search['proc'].stdout
    assert out.count('COMPLETE accuracy/top1=') == 4, out
    assert 'best ' in out and 'stopped: 4 of 4 trials used' in out
    for name in ('results.csv', 'results.md', 'best_config.py', 'best_full_config.py',
                 'progress.png', 'mcts_visits.png'):
        assert osp.isfile(work / name), name
    with open(work / 'results.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['state'] for r in rows] == ['COMPLETE'] * 4
    with open(work / 'results.csv') as f:  # re-read: the test column is added at the end
        rows = list(csv.DictReader(f))
    assert {'trial', 'accuracy/top1', 'param_count', 'duration_s', 'kd0.distance'} <= set(rows[0])
    study = load_study(work, 'mcts')
    assert len({param_key(t) for t in study.trials}) == 4
    for trial in study.trials:
        cfg = Config.fromfile(osp.join(work, 'trials', str(trial.number), 'config.py'))
        assert 'search' not in cfg and cfg.train_cfg.max_epochs == 1
        term = cfg.model.distill_terms[0]
        assert term.distance == trial.params['kd0.distance']
        assert term.weight == trial.params['kd0.weight']
        assert 'satt' not in term.get('transforms', [])  # invalid for logits
    full = Config.fromfile(str(work / 'best_full_config.py'))
    assert full.train_dataloader.dataset.indices != 64  # no proxy settings
    assert full.val_dataloader.dataset.split == 'test'  # the full run is the plain config
    # trials were scored on a split of the training data; the test split was read once
    trial_cfg = Config.fromfile(osp.join(work, 'trials', '0', 'config.py'))
    val, train = trial_cfg.val_dataloader.dataset, trial_cfg.train_dataloader.dataset
    assert (val.type, val.part, val.dataset.split) == ('kdzoo.HeldOutSplit', 'val', 'train')
    assert (train.part, train.train_size) == ('train', 64)
    with open(work / 'best_test.json') as f:
        tested = json.load(f)
    best = [r for r in rows if r['test accuracy/top1 (best only)']]
    assert len(best) == 1 and int(best[0]['trial']) == tested['trial']
    assert float(best[0]['test accuracy/top1 (best only)']) == \
        pytest.approx(tested['metrics']['accuracy/top1'])
    assert 'evaluated once after the search' in (work / 'results.md').read_text()


def test_best_config_reproduces_its_trial(mcts_search, tmp_path):
    work = mcts_search['work']
    study = load_study(work, 'mcts')
    best = study.best_trial
    with open(work / 'best_config.py') as f:
        header = f.read()
    assert f'trial {best.number}:' in header
    # CPU numbers depend on the thread count: the re-run line pins the trial's
    assert '# re-run: OMP_NUM_THREADS=1 python tools/train.py THIS_FILE' in header
    run([sys.executable, 'tools/train.py', str(work / 'best_config.py'), '--work-dir',
         str(tmp_path / 'rerun')])
    assert last_val_top1(tmp_path / 'rerun') == best.value


def test_crashing_and_diverging_trials_fail_and_the_search_goes_on(tmp_path, teacher_ckpt,
                                                                   fmnist_root):
    term = dict(student='backbone.fc', teacher='backbone.fc', distance='kl',
                weight=[1.0, 1e30], tau=[1.0, -1.0])
    config = write_search_config(
        tmp_path / 'fail.py', 'grid', 3, [term],
        enqueue=[{'kd0.weight': 1e30, 'kd0.tau': 1.0},    # the loss overflows to NaN
                 {'kd0.weight': 1.0, 'kd0.tau': -1.0},    # the distiller refuses tau <= 0
                 {'kd0.weight': 1.0, 'kd0.tau': 1.0}])
    proc = run(search_cmd(config, tmp_path / 'out', teacher_ckpt, fmnist_root))
    study = load_study(tmp_path / 'out', 'fail')
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE], proc.stdout
    assert 'non-finite' in study.trials[0].user_attrs['error']
    assert 'tau must be > 0' in study.trials[1].user_attrs['error']
    assert osp.isfile(tmp_path / 'out' / 'best_config.py')
    assert 'FAIL' in (tmp_path / 'out' / 'results.md').read_text()


def test_a_bad_module_path_fails_once_in_the_preflight(tmp_path, teacher_ckpt, fmnist_root):
    """A mistake every candidate shares (here a module path) fails before trial 0, with
    its message, instead of failing every trial; the search exits non-zero."""
    term = dict(LOGIT_TERM, student='backbone.fcc')
    config = write_search_config(tmp_path / 'bad.py', 'random', 4, [term])
    proc = subprocess.run(search_cmd(config, tmp_path / 'out', teacher_ckpt, fmnist_root),
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert 'pre-flight failed, no trial was run' in last and 'backbone.fcc' in last, last
    assert 'Traceback' not in proc.stdout
    assert load_study(tmp_path / 'out', 'bad').trials == []


def test_a_trial_trains_on_two_processes_through_torchrun(tmp_path, teacher_ckpt,
                                                           fmnist_root):
    """``search.trial_gpus=2``: the trial runs ``tools/train.py --launcher pytorch`` under
    torchrun (two gloo processes here, one per GPU on a GPU machine)."""
    term = dict(student='backbone.fc', teacher='backbone.fc', distance='kl', weight=1.0,
                tau=[1.0, 4.0])
    config = write_search_config(tmp_path / 'ddp.py', 'grid', 1, [term], trial_gpus=2)
    run(search_cmd(config, tmp_path / 'out', teacher_ckpt, fmnist_root))
    study = load_study(tmp_path / 'out', 'ddp')
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE, trial.user_attrs.get('error')
    log = (tmp_path / 'out' / 'trials' / '0' / 'train.log').read_text()
    assert 'Distributed training: True' in log and 'GPU number: 2' in log, log[-2000:]
    assert 'CPUDistributedDataParallel' in log      # kdzoo's gloo wrapper on a CPU machine
    assert trial.value == last_val_top1(tmp_path / 'out' / 'trials' / '0')
    bad = write_search_config(tmp_path / 'bad.py', 'grid', 1, [term], trial_gpus=0)
    proc = subprocess.run(search_cmd(bad, tmp_path / 'bad', teacher_ckpt, fmnist_root),
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode != 0 and 'trial_gpus' in proc.stdout + proc.stderr


def _processes_with(text):
    found = []
    for cmdline in glob.glob('/proc/[0-9]*/cmdline'):
        try:
            with open(cmdline, 'rb') as f:
                if text.encode() in f.read():
                    found.append(cmdline)
        except OSError:
            pass
    return found


def test_resume_after_sigkill_keeps_completed_trials_and_retries_the_killed_one(
        tmp_path, teacher_ckpt, fmnist_root):
    config = write_search_config(tmp_path / 'resume.py', dict(type='mcts'), 3, [LOGIT_TERM])
    work = tmp_path / 'out'
    cmd = search_cmd(config, work, teacher_ckpt, fmnist_root)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not osp.isfile(work / 'trials' / '1' / 'train.log'):
        assert proc.poll() is None and time.time() < deadline, 'search ended too early'
        time.sleep(0.05)
    time.sleep(1.0)  # trial 1 is training
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    assert not _processes_with(str(work / 'trials' / '1' / 'config.py')), \
        'the trial outlived its killed search worker'
    killed = load_study(work, 'resume')
    assert [t.state for t in killed.trials] == [TrialState.COMPLETE, TrialState.RUNNING]

    out = run(cmd[:3] + ['--resume'] + cmd[3:]).stdout
    assert 'marked FAILED and re-enqueued' in out
    study = load_study(work, 'resume')
    trials = study.trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    assert trials[0].state == TrialState.COMPLETE and trials[0].value == killed.trials[0].value
    assert trials[1].state == TrialState.FAIL and trials[1].system_attrs['kdzoo:interrupted']
    retries = [t for t in trials if t.user_attrs.get('retry_of') == 1]
    assert len(retries) == 1 and retries[0].params == trials[1].params
    assert retries[0].state == TrialState.COMPLETE
    assert len({param_key(t) for t in complete}) == 3
    assert len(trials) == 4


@pytest.mark.parametrize('backend', ['sqlite', 'postgresql'])
def test_two_workers_share_one_database_storage(backend, tmp_path, teacher_ckpt, fmnist_root,
                                                request):
    config = write_search_config(tmp_path / 'two.py', 'random', 4, [LOGIT_TERM])
    work = tmp_path / 'out'
    url = (f'sqlite:///{tmp_path}/search.db' if backend == 'sqlite' else
           request.getfixturevalue('postgres_url'))
    cmd = search_cmd(config, work, teacher_ckpt, fmnist_root, '--storage', url)
    proc = run(['bash', 'tools/dist_search.sh', config, '2'] + cmd[3:],
               env=dict(ENV, PYTHON=sys.executable))
    assert '[worker 0]' in proc.stdout and '[worker 1]' in proc.stdout
    study = optuna.load_study(study_name='two', storage=url)
    trained = [t for t in study.trials if t.state != TrialState.PRUNED]
    assert [t.state for t in trained] == [TrialState.COMPLETE] * 4
    assert len({param_key(t) for t in trained}) == 4
    workers = {t.system_attrs['kdzoo:worker']['pid'] for t in trained}
    assert len(workers) == 2
    assert len(os.listdir(work / 'trials')) == len(trained)
    with open(work / 'results.csv') as f:
        assert len(list(csv.DictReader(f))) == len(study.trials)
