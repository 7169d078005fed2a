"""Warm trials (``search.trial_launcher='fork'``): forked from a fork server that has
imported the stack, yet each trial behaves as a new ``tools/train.py`` process: the same
metric and weights, the same error for a crash, the same environment, current directory,
random state and thread count; a timeout kills it, and it dies with its search worker."""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from mmengine.config import Config

from kdzoo.models import set_config_dir
from kdzoo.search import prepare_search
from kdzoo.search.forkserver import ForkServer, fork_available
from kdzoo.search.protocol import Job
from kdzoo.search.runner import TrialRunner
from kdzoo.search.settings import search_settings
from kdzoo.search.space import SearchSpace

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')

pytestmark = pytest.mark.skipif(fork_available() is not None, reason=str(fork_available()))


def make_runner(work_dir, fmnist_root, launcher, **search):
    """The trial runner of a tiny search (64 training images, 1 epoch, a random-init
    teacher) whose trials read ``fmnist_root``."""
    cfg = set_config_dir(Config.fromfile(osp.join(ROOT, 'configs/search/random_kd_fmnist.py')))
    options = {'model.teacher_checkpoint': None, 'search.trial_env': ENV,
               'search.proxy.train_indices': 64, 'search.proxy.max_epochs': 1,
               'search.validation.val_size': 64, 'search.trial_launcher': launcher,
               'default_hooks.logger.interval': 1, 'train_dataloader.batch_size': 32,
               'search.space.terms': [dict(student='backbone.fc', teacher='backbone.fc',
                                           distance='kl', weight=1.0, tau=[4.0, -1.0])]}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options.update({f'{loader}.dataset.data_root': fmnist_root,
                        f'{loader}.num_workers': 0, f'{loader}.persistent_workers': False})
    options.update({f'search.{k}': v for k, v in search.items()})
    cfg.merge_from_dict(options)
    found = prepare_search(cfg, str(work_dir), study_name=launcher)
    runner = found.runner
    runner.launcher = launcher
    return runner, found.space


SPACE = dict(terms=[dict(student='backbone.fc', teacher='backbone.fc', distance='kl',
                         weight=[1.0, 2.0])])


def tiny_space():
    return SearchSpace.from_config(SPACE)


PARAMS = {'kd0.tau': 4.0, 'student.width_mult': 0.5}


def last_weights(trial_dir):
    with open(osp.join(trial_dir, 'last_checkpoint')) as f:
        return torch.load(f.read().strip(), map_location='cpu', weights_only=False)['state_dict']


@pytest.fixture(scope='module')
def cold_and_warm(tmp_path_factory, fmnist_root):
    """The same trial (and a crashing one) run cold and warm."""
    out = {}
    for launcher in ('spawn', 'fork'):
        work = tmp_path_factory.mktemp(launcher)
        runner, space = make_runner(work, fmnist_root, launcher)
        params = dict(space.first_valid(), **PARAMS)
        runner.warm_up()  # else the first trial spawns while the fork server warms up
        try:
            good = runner(Job(0, params, keep_checkpoints=True))
            bad = runner(Job(1, dict(params, **{'kd0.tau': -1.0})))  # tau <= 0 is refused
            out[launcher] = dict(runner=runner, good=good, bad=bad, work=str(work),
                                 server=runner.fork_server and dict(runner.fork_server.info))
        finally:
            runner.close()
    return out


def test_cold_and_warm_trials_give_the_same_metric_and_weights(cold_and_warm):
    cold, warm = cold_and_warm['spawn'], cold_and_warm['fork']
    assert cold['server'] is None and warm['server'] is not None  # warm really forked
    assert warm['runner'].fork_error is None
    assert any(path.endswith('train-images-idx3-ubyte.gz') for path in warm['server']['warmed'])
    assert cold['good'].error is None and warm['good'].error is None, warm['good'].error
    assert warm['good'].value == cold['good'].value
    assert warm['good'].attrs['metrics'] == cold['good'].attrs['metrics']
    a = last_weights(osp.join(cold['work'], 'trials', '0'))
    b = last_weights(osp.join(warm['work'], 'trials', '0'))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_crashing_trial_fails_with_the_error_of_a_cold_one(cold_and_warm):
    cold, warm = cold_and_warm['spawn'], cold_and_warm['fork']

    def first_line(result):
        return result.error.splitlines()[0].replace(cold['work'], 'W').replace(warm['work'],
                                                                               'W')
    assert cold['bad'].error is not None and 'tau must be > 0' in cold['bad'].error
    assert first_line(warm['bad']) == first_line(cold['bad'])
    assert 'the training exited with 1' in first_line(warm['bad'])


PROBE = textwrap.dedent('''\
    import json, os, random, sys
    import numpy as np
    import torch
    out = dict(argv=sys.argv[1:], cwd=os.getcwd(), env=os.environ.get('PROBE_VALUE'),
               threads=torch.get_num_threads(), torch_seed=torch.initial_seed(),
               torch_draw=torch.rand(3).tolist(), matmul=float((torch.ones(64, 64) @
                                                                 torch.ones(64, 64)).sum()),
               random=random.random(), numpy=float(np.random.rand()), pid=os.getpid())
    print('PROBE', json.dumps(out), flush=True)
    code = int(os.environ.get('PROBE_EXIT', '0'))
    if code < 0:
        import time
        time.sleep(600)
    sys.exit(code)
    ''')


def probe(tmp_path, launcher, timeout=None, exit_code=0):
    """Train with the probe script instead of tools/train.py; its output and result."""
    script = tmp_path / 'probe.py'
    script.write_text(PROBE)
    cfg = Config(dict(model=dict(distill_terms=[]), train_cfg=dict(max_epochs=1)))
    runner = TrialRunner(cfg, tiny_space(), str(tmp_path),
                         train_script=str(script), timeout=timeout, count_params=False,
                         env=dict(ENV, PROBE_VALUE=launcher, PROBE_EXIT=str(exit_code)),
                         launcher=launcher, poll_interval=0.1)
    (tmp_path / 'run').mkdir()
    runner.warm_up()
    cwd = os.getcwd()
    os.chdir(tmp_path / 'run')  # the trial runs in the worker's current directory
    try:
        result = runner.train(str(tmp_path / 'config.py'), str(tmp_path))
    finally:
        os.chdir(cwd)
    server = runner.fork_server
    runner.close()
    lines = [line for line in (tmp_path / 'train.log').read_text().splitlines()
             if line.startswith('PROBE ')]
    return (json.loads(lines[0][6:]) if lines else None), result, server


def test_a_warm_trial_starts_as_a_new_process(tmp_path):
    """argv, cwd, environment, torch threads and torch's random stream as in a new
    interpreter; ``random`` and NumPy reseeded (not the fork server's state)."""
    (tmp_path / 'cold').mkdir()
    (tmp_path / 'warm').mkdir()
    cold, _, none = probe(tmp_path / 'cold', 'spawn')
    warm, _, server = probe(tmp_path / 'warm', 'fork')
    assert none is None and server is not None
    assert warm['pid'] != server.info['pid']
    for key in ('threads', 'matmul'):
        assert warm[key] == cold[key], key
    assert warm['argv'] == [str(tmp_path / 'warm' / 'config.py'), '--work-dir',
                            str(tmp_path / 'warm')]
    assert warm['cwd'] == str(tmp_path / 'warm' / 'run') and warm['env'] == 'fork'
    assert warm['threads'] == 1  # OMP_NUM_THREADS of search.trial_env


def test_two_warm_trials_draw_different_random_and_numpy_numbers(tmp_path):
    script = tmp_path / 'probe.py'
    script.write_text(PROBE)
    server = ForkServer(sys.executable, dict(os.environ, **ENV), modules=['numpy', 'torch'],
                        module_path=ROOT)
    server.start()
    try:
        draws = []
        for n in range(2):
            log = tmp_path / f'{n}.log'
            with open(log, 'w') as f:
                trial = server.launch([], f.fileno(), dict(os.environ, **ENV),
                                      script=str(script))
                assert trial.wait(60) == 0
            line = [x for x in log.read_text().splitlines() if x.startswith('PROBE ')][0]
            draws.append(json.loads(line[6:]))
    finally:
        server.close()
    assert draws[0]['random'] != draws[1]['random']
    assert draws[0]['numpy'] != draws[1]['numpy']
    fresh = [int(subprocess.run([sys.executable, '-c', 'import torch; print(torch.initial_seed())'],
                                capture_output=True, text=True).stdout) for _ in range(2)]
    # as two new interpreters: the same fixed seed, or two seeds from the OS's entropy
    assert (draws[0]['torch_seed'] == draws[1]['torch_seed']) == (fresh[0] == fresh[1])
    assert (draws[0]['torch_draw'] == draws[1]['torch_draw']) == (fresh[0] == fresh[1])


def test_exit_codes_and_timeouts_as_cold(tmp_path):
    for launcher in ('spawn', 'fork'):
        work = tmp_path / launcher
        work.mkdir()
        (work / 'a').mkdir()
        _, result, _ = probe(work / 'a', launcher, exit_code=3)
        assert result.error.startswith('the training exited with 3'), result.error
        (work / 'b').mkdir()
        # long enough for a cold interpreter to import torch on a loaded machine
        out, result, _ = probe(work / 'b', launcher, timeout=12.0, exit_code=-1)
        assert result.error == 'timed out after 12s'
        assert out is not None, 'the probe never started'
        time.sleep(0.2)
        assert not osp.exists(f'/proc/{out["pid"]}') or \
            open(f'/proc/{out["pid"]}/stat').read().split(')')[1].split()[0] == 'Z'


WORKER = textwrap.dedent('''\
    import os, sys
    from kdzoo.search.forkserver import ForkServer
    script, log, env = sys.argv[1], sys.argv[2], dict(os.environ)
    server = ForkServer(sys.executable, env, modules=['torch'], module_path=sys.argv[3])
    server.start()
    with open(log, 'w') as f:
        trial = server.launch([], f.fileno(), env, script=script)
    print(server.proc.pid, trial.pid, flush=True)
    trial.wait()
    ''')


def alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def test_killing_the_worker_kills_its_trial(tmp_path):
    script = tmp_path / 'probe.py'
    script.write_text(PROBE)
    worker = subprocess.Popen(
        [sys.executable, '-c', WORKER, str(script), str(tmp_path / 'trial.log'), ROOT],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PROBE_EXIT='-1', **ENV))
    try:
        zygote, trial = map(int, worker.stdout.readline().split())
        deadline = time.time() + 60
        while 'PROBE' not in (tmp_path / 'trial.log').read_text():  # the trial is running
            assert time.time() < deadline and worker.poll() is None
            time.sleep(0.05)
        assert alive(zygote) and alive(trial)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    deadline = time.time() + 10
    while (alive(zygote) or alive(trial)) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(trial), 'the trial outlived its killed search worker'
    assert not alive(zygote), 'the fork server outlived its killed search worker'


def test_a_bad_launcher_value_names_the_choices():
    with pytest.raises(ValueError, match=r"trial_launcher='forks'; valid: fork, spawn"):
        search_settings(dict(space=SPACE, trial_launcher='forks'))
    assert search_settings(dict(space=SPACE))['trial_launcher'] == 'fork'
    cfg = Config(dict(model=dict(distill_terms=[])))
    with pytest.raises(ValueError, match='valid: fork, spawn'):
        TrialRunner(cfg, tiny_space(), '/tmp', launcher='warm')


def test_the_first_trial_does_not_wait_for_the_fork_server(tmp_path):
    """It spawns while the server warms up; the next ones are forked."""
    script = tmp_path / 'probe.py'
    script.write_text(PROBE)
    cfg = Config(dict(model=dict(distill_terms=[]), train_cfg=dict(max_epochs=1)))
    runner = TrialRunner(cfg, tiny_space(), str(tmp_path), train_script=str(script),
                         count_params=False, env=ENV, poll_interval=0.1)
    try:
        with open(tmp_path / 'log', 'w') as log:
            first = runner.launch([sys.executable, str(script)], log, dict(os.environ, **ENV))
            assert isinstance(first, subprocess.Popen) and first.wait(60) == 0
            assert runner.fork_server is not None and runner.warm_up() is not None
            second = runner.launch([sys.executable, str(script)], log,
                                   dict(os.environ, **ENV))
            assert not isinstance(second, subprocess.Popen) and second.wait(60) == 0
    finally:
        runner.close()


def test_multi_process_trials_and_unavailable_fork_spawn(tmp_path, monkeypatch):
    cfg = Config(dict(model=dict(distill_terms=[])))
    space = tiny_space()
    assert not TrialRunner(cfg, space, str(tmp_path), gpus=2).warm_launch()
    lines = []
    runner = TrialRunner(cfg, space, str(tmp_path), log=lines.append)
    monkeypatch.setattr('kdzoo.search.runner.fork_available', lambda: 'no fork here')
    assert runner.warm_up() is None and not runner.warm_launch()
    assert len(lines) == 1 and 'no fork here' in lines[0] and "'spawn'" in lines[0]
