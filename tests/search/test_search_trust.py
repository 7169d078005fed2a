"""Bad input fails once and clearly, faults lose no data, and a running trial reports to
Optuna: storage URLs, the journal's partial last line, report and work-dir failures,
misspelt or invalid spaces and warm starts, intermediate values and pruning."""
import errno
import glob
import os
import os.path as osp
import textwrap
import time

import optuna
import pytest
from mmengine.config import Config
from optuna.trial import TrialState

from kdzoo.search import (SearchLoop, SearchSpace, TrialResult, TrialRunner,
                          build_searcher, build_search, open_storage, open_study,
                          run_search, search_settings)
from kdzoo.search.display import progress_text
from kdzoo.search.entry import check_work_dir
from kdzoo.utils.files import atomic_write
from kdzoo.search.settings import SEARCH_DEFAULTS
from kdzoo.search.storage import STORAGE_FORMS, repair_journal, storage_url
from search_helpers import new_book

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = dict(terms=[dict(student='s', teacher='t', distance=['kl', 'l2'],
                         weight=[1.0, 5.0], tau=[1.0, 4.0])])


def settings(**kwargs):
    out = dict(SEARCH_DEFAULTS, space=SPACE, searcher='random')
    out.update(kwargs)
    return search_settings(out)


# --- storage URLs -----------------------------------------------------------------------------
def test_storage_forms(tmp_path):
    assert storage_url(str(tmp_path / 'a.db')) == f'sqlite:///{tmp_path}/a.db'
    assert storage_url('postgresql://u:p@h:5432/d') == 'postgresql+psycopg2://u:p@h:5432/d'
    for bad, match in (('mysql://u@h/d', "unsupported scheme 'mysql'"),
                       ('results.csv', 'not a storage kdzoo knows'),
                       ('sqlite:x.db', 'without "//"'), ('sqlite://x.db', 'three slashes')):
        with pytest.raises(ValueError, match=match) as info:
            storage_url(bad)
        assert bad in str(info.value)
    with pytest.raises(ValueError) as info:
        storage_url('mysql://u@h/d')
    assert all(form in str(info.value) for form in STORAGE_FORMS)
    # a *.db path is a working SQLite storage
    storage = open_storage(str(tmp_path / 'sub' / 'study.db'), str(tmp_path))
    optuna.create_study(storage=storage, study_name='s')
    assert osp.isfile(tmp_path / 'sub' / 'study.db')


def test_documented_postgresql_url_works(postgres_url, tmp_path):
    """The form the docs, --help and the Slurm example write: postgresql://..."""
    plain = postgres_url.replace('postgresql+psycopg2://', 'postgresql://')
    storage = open_storage(plain, str(tmp_path))
    study = optuna.create_study(storage=storage, study_name='documented-form')
    study.enqueue_trial({'x': 1.0})
    assert len(optuna.load_study(study_name='documented-form', storage=storage).trials) == 1


def test_unreachable_database_names_itself_without_the_password(tmp_path):
    from kdzoo.search.runner import free_port
    url = f'postgresql://kdzoo:secret@127.0.0.1:{free_port()}/none'
    start = time.time()
    with pytest.raises(ConnectionError, match=r'kdzoo:\*\*\*@127\.0\.0\.1') as info:
        open_storage(url, str(tmp_path))
    assert 'secret' not in str(info.value)
    assert time.time() - start < 5  # a refused connection is not retried


# --- the journal's partial last line --------------------------------------------------------------
def _complete_trials(storage, name='j', n=3):
    study = optuna.create_study(storage=storage, study_name=name)
    for i in range(n):
        study.add_trial(optuna.trial.create_trial(
            params={'x': float(i)}, distributions={'x': optuna.distributions.FloatDistribution(
                0, 10)}, value=float(i)))
    return study


def test_a_write_cut_by_a_full_disk_is_repaired_on_open(tmp_path, monkeypatch):
    from optuna.storages.journal import JournalFileBackend
    path = str(tmp_path / 'search.journal')
    storage = open_storage(path, str(tmp_path))
    study = _complete_trials(storage)
    real = JournalFileBackend.append_logs

    def disk_full(self, logs):  # half a line reaches the disk, then ENOSPC
        import json
        with open(self._file_path, 'ab') as f:
            f.write(json.dumps(logs[0]).encode()[:25])
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(JournalFileBackend, 'append_logs', disk_full)
    with pytest.raises(OSError, match='No space left'):
        study.set_user_attr('after', 1)
    monkeypatch.setattr(JournalFileBackend, 'append_logs', real)
    with open(path, 'rb') as f:
        assert not f.read().endswith(b'\n')
    # without the repair, the next append glues onto the half line and the file is lost
    broken = str(tmp_path / 'broken.journal')
    with open(path, 'rb') as src, open(broken, 'wb') as dst:
        dst.write(src.read())
    from optuna.storages import JournalStorage
    with pytest.raises(ValueError):  # json's JSONDecodeError
        raw = JournalStorage(JournalFileBackend(broken))
        optuna.load_study(study_name='j', storage=raw).set_user_attr('resumed', 1)
        optuna.load_study(study_name='j', storage=raw).set_user_attr('later', 2)
        JournalStorage(JournalFileBackend(broken)).get_all_studies()
    # with it (what --resume does), every COMPLETE trial is readable and writing goes on
    logs = []
    again = open_storage(path, str(tmp_path), log=logs.append)
    assert len(glob.glob(path + '.partial-*')) == 1 and 'partial line' in logs[0]
    resumed = optuna.load_study(study_name='j', storage=again)
    resumed.set_user_attr('resumed', 1)
    reread = optuna.load_study(study_name='j', storage=open_storage(path, str(tmp_path)))
    assert [t.value for t in reread.trials] == [0.0, 1.0, 2.0]
    assert reread.user_attrs == {'resumed': 1}
    assert repair_journal(path) is None  # a whole file is left alone


# --- report, work dir, temporaries -------------------------------------------------------------
def test_a_failing_report_does_not_stop_the_search(tmp_path, monkeypatch):
    space = SearchSpace.from_config(SPACE)
    search = build_search(settings(n_trials=4), space, optuna.storages.InMemoryStorage(),
                          lambda job, monitor: TrialResult(value=1.0),
                          work_dir=str(tmp_path))
    calls = []

    def full_disk(s):
        calls.append(1)
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr('kdzoo.search.entry.write_search_report', full_disk)
    logs = []
    run_search(search, log=logs.append)
    assert len(calls) == 4  # retried after every trial
    assert len([t for t in search.study.trials if t.state == TrialState.COMPLETE]) == 4
    assert sum('report could not be written' in line for line in logs) == 4


def test_atomic_write_leaves_no_temporary(tmp_path, monkeypatch):
    target = str(tmp_path / 'results.md')
    monkeypatch.setattr(os, 'replace', lambda a, b: (_ for _ in ()).throw(
        OSError(errno.EROFS, 'Read-only file system')))
    with pytest.raises(OSError):
        atomic_write(target, 'x')
    assert os.listdir(tmp_path) == []


def test_unwritable_work_dir_is_one_clear_line():
    with pytest.raises(SystemExit, match=r'cannot write to the work dir /sys/kdzoo-test'):
        check_work_dir('/sys/kdzoo-test', 'study')


# --- bad spaces and warm starts fail before anything runs -------------------------------------
def test_misspelt_transform_or_distance_fails_at_load_time():
    with pytest.raises(KeyError, match=r"kd0.transform0.*sofmax_C.*Did you mean.*softmax_C"):
        SearchSpace.from_config(dict(terms=[dict(student='s', teacher='t',
                                                 transform_slots=[['no', 'sofmax_C']],
                                                 distance='kl')]))
    with pytest.raises(KeyError, match=r"kd0.distance.*'kll'.*Did you mean"):
        SearchSpace.from_config(dict(terms=[dict(student='s', teacher='t',
                                                 distance=['kl', 'kll'])]))


def test_a_space_without_a_valid_distiller_is_an_error():
    with pytest.raises(ValueError, match='no valid distiller'):  # satt needs rank 4
        SearchSpace.from_config(dict(terms=[dict(student='s', teacher='t', input_rank=2,
                                                 transforms=['satt'], distance='l2')]))


def test_bad_enqueue_values_and_budgets_are_refused_before_any_trial():
    space = SearchSpace.from_config(SPACE)
    searcher = build_searcher('random')
    storage = optuna.storages.InMemoryStorage()
    with pytest.raises(KeyError, match=r"search.enqueue\[1\]: kd0.tau=2.0 is not a choice; "
                       r"the choices are \[1.0, 4.0\]"):
        open_study(storage, 's', ['maximize'], searcher.sampler(space), space,
                   enqueue=[{'kd0.tau': 4.0}, {'kd0.tau': 2.0}])
    with pytest.raises(KeyError, match=r"search.enqueue\[0\] has unknown keys \['kd0.temp'\]"):
        open_study(storage, 't', ['maximize'], searcher.sampler(space), space,
                   enqueue=[{'kd0.temp': 4.0}])
    assert all(not s.n_trials for s in optuna.get_all_study_summaries(storage))
    for bad in (-1, 0, 2.5):
        with pytest.raises(ValueError, match=r'search.n_trials='):
            settings(n_trials=bad)


# --- a running trial: intermediate values, pruning, progress --------------------------------------
FAKE_TRAIN = textwrap.dedent('''
    import json, os, sys, time
    work = sys.argv[sys.argv.index('--work-dir') + 1]
    run = os.path.join(work, '20260101_000000', 'vis_data')
    os.makedirs(run, exist_ok=True)
    values = {values}
    for epoch, value in enumerate(values, 1):
        print(f'Epoch(train) [{{epoch}}][ 5/10]  lr: 0.1  eta: 0:00:0{{9 - epoch}}  loss: 1.0',
              flush=True)
        with open(os.path.join(run, 'scalars.json'), 'a') as f:
            f.write(json.dumps({{'loss': 1.0, 'epoch': epoch, 'iter': 10, 'step': epoch}}) + '\\n')
            f.write(json.dumps({{'accuracy/top1': value, 'step': epoch}}) + '\\n')
        time.sleep(0.4)
''')


def fake_runner(tmp_path, values, space):
    script = tmp_path / 'fake_train.py'
    script.write_text(FAKE_TRAIN.format(values=values))
    cfg = Config(dict(model=dict(type='Distiller', distill_terms=[]),
                      train_cfg=dict(max_epochs=len(values))))
    return TrialRunner(cfg, space, str(tmp_path / 'work'), train_script=str(script),
                       count_params=False, poll_interval=0.05)


def test_validation_values_reach_optuna_per_epoch(tmp_path):
    space = SearchSpace.from_config(SPACE)
    runner = fake_runner(tmp_path, [10.0, 20.0, 30.0], space)
    searcher = build_searcher('random')
    book = new_book(searcher, space)
    progress, logs = [], []
    SearchLoop(book, space, searcher, runner, 1, log=logs.append,
               on_progress=progress.append).run()
    trial = book.study.trials[0]
    assert trial.state == TrialState.COMPLETE and trial.value == 30.0
    assert trial.intermediate_values == {1: 10.0, 2: 20.0, 3: 30.0}
    assert any(p.get('epoch') and p.get('iters') == 10 and p.get('eta') for p in progress)
    log_path = osp.join(runner.work_dir, 'trials', '0', 'train.log')
    assert any(line.endswith(f'started; log: {log_path}') for line in logs)
    assert 'trial 0' in progress_text(progress[-1]) and 'epoch' in progress_text(progress[-1])


def test_the_studys_pruner_stops_a_hopeless_trial_and_it_counts(tmp_path):
    space = SearchSpace.from_config(SPACE)
    runner = fake_runner(tmp_path, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], space)
    pruner = dict(type='ThresholdPruner', lower=50.0)
    search = build_search(settings(n_trials=1, pruner=pruner), space,
                          optuna.storages.InMemoryStorage(), runner)
    start = time.time()
    run_search(search, report=False, log=None)
    trial = search.study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs['pruned_at_step'] == 1 and 'pruner' in trial.user_attrs[
        'pruned_reason']
    assert time.time() - start < 2.0  # stopped after epoch 1 of 6 (0.4 s each)
    assert len(search.study.trials) == 1  # it used the budget: no second trial
    with pytest.raises(KeyError, match='valid: .*MedianPruner'):
        build_search(settings(pruner=dict(type='Median')), space,
                     optuna.storages.InMemoryStorage(), runner)
    with pytest.raises(ValueError, match='one objective'):
        build_search(settings(searcher=dict(type='nsga2'), pruner='MedianPruner'), space,
                     optuna.storages.InMemoryStorage(), runner)


def test_a_storage_error_in_a_heartbeat_is_logged_and_training_goes_on():
    space = SearchSpace.from_config(SPACE)
    searcher = build_searcher('random')
    book = new_book(searcher, space)
    logs = []
    book.log = logs.append
    trial = book.study.ask(space.distributions())
    beat = book.heartbeat(trial.number)

    class Broken:
        def set_trial_system_attr(self, *args):
            raise OSError(errno.EIO, 'I/O error')

    book.storage = Broken()
    beat()
    beat()
    assert len(logs) == 1 and 'retried at the next beat' in logs[0]


def test_best_config_is_copied_from_the_trials_own_dir_never_from_the_storage(tmp_path):
    """Whoever can write a shared storage must not make the user run a file of theirs: the
    trial's ``config`` attribute names another file here, and is not followed."""
    space = SearchSpace.from_config(SPACE)
    runner = fake_runner(tmp_path, [50.0], space)
    runner.full_cfg = Config(runner.cfg.to_dict())
    evil = tmp_path / 'evil.py'
    evil.write_text('import os; os.system("echo pwned")\n')

    def evaluate(job, monitor):
        result = runner(job, monitor)
        result.attrs['config'] = str(evil)  # what a tampered storage would hold
        return result

    search = build_search(settings(n_trials=1, preflight=False), space,
                          optuna.storages.InMemoryStorage(), evaluate,
                          work_dir=runner.work_dir, runner=runner)
    run_search(search, report=False, log=None)
    assert search.study.trials[0].user_attrs['config'] == str(evil)
    from kdzoo.search import write_search_report
    assert write_search_report(search).number == 0
    copied = open(osp.join(runner.work_dir, 'best_config.py')).read()
    assert copied == open(osp.join(runner.work_dir, 'trials', '0', 'config.py')).read()
    assert 'pwned' not in copied
    full = Config.fromfile(osp.join(runner.work_dir, 'best_full_config.py'))
    assert full.work_dir == osp.join(runner.work_dir, 'best_full')
