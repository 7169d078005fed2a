"""kdzoo works from an installed wheel, away from a source checkout: the command-line
programs (``python -m kdzoo.cli.*`` and the console scripts), the shipped configs and the
teacher config paths they name."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """The wheel built from this checkout, installed (without its dependencies, which the
    test environment has) into a fresh directory that shadows the editable install."""
    base = tmp_path_factory.mktemp('wheel')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '-q', '-w', str(base / 'dist'), ROOT], check=True, cwd=str(base),
                   capture_output=True)
    wheel = glob.glob(str(base / 'dist' / 'kdzoo-*.whl'))[0]
    target = base / 'site'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q', '--target',
                    str(target), wheel], check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=str(target), OMP_NUM_THREADS='1')
    away = base / 'elsewhere'  # not the checkout: nothing may be found relative to it
    away.mkdir()
    return dict(site=target, env=env, cwd=str(away))


def python(installed, *args, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=installed['cwd'], env=installed['env'],
                          capture_output=True, text=True, timeout=timeout)


def test_the_installed_package_is_the_one_imported(installed):
    proc = python(installed, '-c', 'import kdzoo; print(kdzoo.__file__)')
    assert proc.stdout.strip().startswith(str(installed['site'])), proc.stdout + proc.stderr


def test_configs_ship_inside_the_package_and_teacher_paths_resolve(installed):
    shipped = installed['site'] / 'kdzoo' / '.mim' / 'configs'
    assert (shipped / 'fashion_mnist' / 'kd_fmnist.py').is_file()
    assert (shipped / '_base_' / 'default_runtime.py').is_file()
    proc = python(installed, '-c', (
        'from kdzoo.models.teachers import resolve_config_path; '
        "print(resolve_config_path('configs/fashion_mnist/teacher_fmnist.py'))"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(shipped / 'fashion_mnist' / 'teacher_fmnist.py')


def test_search_and_train_run_from_the_installed_package(installed, fmnist_root, tmp_path):
    shipped = installed['site'] / 'kdzoo' / '.mim' / 'configs'
    proc = python(installed, '-m', 'kdzoo.cli.search',
                  str(shipped / 'search' / 'mcts_kd_fmnist.py'), '--show-space')
    assert proc.returncode == 0 and 'valid distillers' in proc.stdout, proc.stderr[-3000:]
    script = installed['site'] / 'bin' / 'kdzoo-search'
    assert script.is_file()
    proc = subprocess.run([str(script), str(shipped / 'search' / 'random_kd_fmnist.py'),
                           '--show-space'], cwd=installed['cwd'], env=installed['env'],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and 'decisions' in proc.stdout, proc.stderr[-3000:]
    options = [f'train_dataloader.dataset.data_root={fmnist_root}',
               f'val_dataloader.dataset.data_root={fmnist_root}',
               'train_dataloader.dataset.indices=32', 'val_dataloader.dataset.indices=32',
               'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
               'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
               'train_cfg.max_epochs=1']
    work = tmp_path / 'teacher'
    proc = python(installed, '-m', 'kdzoo.cli.train',
                  str(shipped / 'fashion_mnist' / 'teacher_fmnist.py'), '--work-dir', str(work),
                  '--cfg-options', *options)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (work / 'epoch_1.pth').is_file()
