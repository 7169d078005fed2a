"""tools/train.py: Ctrl-C ends a run (at the next iteration boundary) with one line and exit
code 130; --cfg-options name distill terms by their names (tools/train.py and tools/test.py)."""
import importlib.util
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest
from mmengine.config import Config

from kdzoo.utils import merge_cfg_options, resolve_term_names

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool(name):
    """The program behind ``tools/<name>.py`` (``kdzoo.cli.<name>``)."""
    return importlib.import_module(f'kdzoo.cli.{name}')


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, fmnist_root):
    work = tmp_path / 'run'
    cmd = [sys.executable, 'tools/train.py', 'configs/fashion_mnist/student_fmnist.py',
           '--work-dir', str(work), '--cfg-options',
           f'train_dataloader.dataset.data_root={fmnist_root}',
           f'val_dataloader.dataset.data_root={fmnist_root}',
           'train_dataloader.dataset.indices=None', 'train_dataloader.batch_size=16',
           'train_dataloader.num_workers=2', 'val_dataloader.num_workers=0',
           'val_dataloader.persistent_workers=False', 'train_cfg.max_epochs=50']
    log_out, log_err = open(tmp_path / 'out.log', 'w'), open(tmp_path / 'err.log', 'w')
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log_out, stderr=log_err)
    deadline = time.time() + 300
    while not (work / 'last_checkpoint').exists() and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    log_out.close()
    log_err.close()
    out, err = (tmp_path / 'out.log').read_text(), (tmp_path / 'err.log').read_text()
    assert proc.returncode == 130, out[-2000:] + err[-3000:]
    assert 'Traceback' not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    match = re.fullmatch(r'interrupted at epoch (\d+) iter (\d+); resume with --resume '
                         r'\(from .*epoch_(\d+)\.pth\)', lines[-1])
    assert match, lines[-5:]
    epoch, iteration, saved = map(int, match.groups())
    # 512 images / 16 = 32 iterations per epoch; epoch 1 was saved before the signal
    assert iteration >= 32 and epoch == (iteration - 1) // 32 + 1
    assert saved in (epoch - 1, epoch) and saved >= 1


def test_the_first_ctrl_c_waits_for_a_safe_point_the_second_does_not():
    from kdzoo.engine import DeferredInterrupt, InterruptHook
    with DeferredInterrupt() as interrupt:
        hook = InterruptHook(interrupt)
        hook.before_train_iter(None, 0)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert interrupt.requested
        with pytest.raises(KeyboardInterrupt):
            hook.before_train_iter(None, 0)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


KD_TERMS = [dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0),
            dict(student='backbone.layer3', teacher='backbone.layer3', transforms=['satt'],
                 distance='l2', name='at')]


def kd_cfg():
    return Config(dict(model=dict(type='Distiller', distill_terms=[dict(t) for t in KD_TERMS]),
                       train_cfg=dict(max_epochs=3)))


def test_terms_are_addressed_by_name_or_index():
    cfg = merge_cfg_options(kd_cfg(), {'model.distill_terms.kd0.weight': 2.0,
                                       'model.distill_terms.at.tau': 8.0,
                                       'model.distill_terms.1.weight': 5.0,
                                       'train_cfg.max_epochs': 4})
    first, second = cfg.model.distill_terms
    assert first.weight == 2.0 and first.tau == 4.0
    assert second.tau == 8.0 and second.weight == 5.0 and second.name == 'at'
    assert cfg.train_cfg.max_epochs == 4
    assert resolve_term_names(kd_cfg(), {'model.distill_terms.at': dict(tau=1.0)}) == {
        'model.distill_terms.1': dict(tau=1.0)}


def test_an_unknown_term_name_lists_the_valid_ones():
    with pytest.raises(KeyError, match=r"no distill term named 'kd1'; the terms \(name "
                                       r"\(index\)\) are: kd0 \(0\), at \(1\)"):
        merge_cfg_options(kd_cfg(), {'model.distill_terms.kd1.weight': 2.0})
    with pytest.raises(KeyError, match="named 'kd0'.*are: none"):
        merge_cfg_options(Config(dict(model=dict(type='ImageClassifier'))),
                          {'model.distill_terms.kd0.weight': 2.0})


def test_train_and_test_tools_resolve_term_names(tmp_path):
    train = load_tool('train')
    args = train.parse_args(['configs/fashion_mnist/kd_fmnist.py', '--work-dir', str(tmp_path),
                             '--cfg-options', 'model.distill_terms.kd0.weight=2.5'])
    cfg = train.merge_args(Config.fromfile('configs/fashion_mnist/kd_fmnist.py'), args)
    assert cfg.model.distill_terms[0].weight == 2.5
    assert {'finite_loss', 'step_seed'} <= set(cfg.default_hooks)

    test = load_tool('test')
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'')
    with pytest.raises(KeyError, match="no distill term named 'kd7'"):
        test.main(['configs/fashion_mnist/kd_fmnist.py', str(ckpt),
                   '--cfg-options', 'model.distill_terms.kd7.tau=1'])
