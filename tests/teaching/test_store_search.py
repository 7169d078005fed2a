"""A search whose trials read the teacher from one store (Auto-KD's proxy + offline
setting): no trial builds or runs the teacher."""
import glob
import os
import os.path as osp
import subprocess
import sys

import optuna
from mmengine.config import Config

from kdzoo.models import set_config_dir
from kdzoo.teaching import TeacherStore
from kdzoo.teaching.build import build_store
from teaching_helpers import ROOT, save_teacher

ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def test_every_trial_of_a_search_reads_one_store(tmp_path, fmnist_root):
    ckpt = save_teacher(str(tmp_path / 'teacher.pth'))
    store = str(tmp_path / 'store')
    config = tmp_path / 'search.py'
    config.write_text('\n'.join([
        f"_base_ = ['{ROOT}/configs/funmatch/funmatch_fmnist.py']",
        "teaching = dict(mode='same/ic', mixup_alpha=None)",
        'search = dict(searcher=dict(type="random"), n_trials=2, seed=0,',
        '    space=dict(terms=[dict(student="backbone.fc", teacher="backbone.fc",',
        '        input_rank=2, transform_slots=[["no", "softmax_C"]],',
        '        distance=["kl", "l2"], weight=[1.0], tau=[1.0, 4.0])]),',
        f'    proxy=dict(train_indices=48, max_epochs=1, teacher_store={store!r}))', '']))
    options = {f'{loader}.{key}': value for loader in ('train_dataloader', 'val_dataloader')
               for key, value in (('num_workers', 0), ('persistent_workers', False))}
    options.update({f'{loader}.dataset.data_root': fmnist_root
                    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')})
    options.update({'train_dataloader.batch_size': 16, 'model.teacher_checkpoint': ckpt})
    # the store of a search config holds what its trials train on: the validation split's
    # training part, the proxy's 48 images
    cfg = set_config_dir(Config.fromfile(str(config)))
    cfg.merge_from_dict(options)
    build_store(cfg, store, replays=2, progress=False)
    assert TeacherStore.open(store).length == 48
    work = tmp_path / 'out'
    proc = subprocess.run([sys.executable, 'tools/search.py', str(config), '--work-dir',
                           str(work), '--cfg-options',
                           *[f'{k}={v}' for k, v in options.items()]], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(work / 'search.journal')))
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0],
                              storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2
    trial_dirs = sorted(glob.glob(str(work / 'trials' / '*')))
    assert len(trial_dirs) == 2
    for trial_dir in trial_dirs:
        assert Config.fromfile(osp.join(trial_dir, 'config.py')).teaching.store == store
        logs = ''.join(open(f).read() for f in glob.glob(osp.join(trial_dir, '*', '*.log')))
        assert 'Distiller: teacher' in logs
        assert f'teacher the teacher store {store}' in logs  # no teacher model built
