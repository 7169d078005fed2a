"""Auto-KD's accelerations and reward: CE and CKA measured on the validation data, logged
and read by the search (a search asking for the reward without the features fails before any
trial); the sparse-training schedule."""
import math
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from torch.utils.data import DataLoader, default_collate

from engine_helpers import ROOT, ENV, data_options
from kdzoo.engine import AutoKDRewardHook
from kdzoo.models import set_config_dir
from kdzoo.registry import DATASETS, MODELS
from kdzoo.search.entry import SearchError, prepare_search
from kdzoo.search.runner import metric_from_scalars, read_scalars
from kdzoo.utils import register_all_modules


def hsic(k, l):  # noqa: E741
    """The card's HSIC(K, L) = tr(K H L H) / (m - 1)^2."""
    m = k.shape[0]
    h = torch.eye(m, dtype=k.dtype) - torch.full((m, m), 1.0 / m, dtype=k.dtype)
    return torch.trace(k @ h @ l @ h) / (m - 1) ** 2


def test_the_reward_is_the_papers_formula_on_the_validation_outputs(fmnist_root):
    register_all_modules()
    cfg = set_config_dir(Config.fromfile('configs/fashion_mnist/kd_fmnist.py'))
    cfg.model.teacher_checkpoint = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    dataset = DATASETS.build(dict(cfg.val_dataloader.dataset, data_root=fmnist_root,
                                  indices=40))
    loader = DataLoader(dataset, batch_size=16, collate_fn=default_collate)
    hook = AutoKDRewardHook(student='backbone.pool', teacher='backbone.layer3',
                            max_samples=36)
    got = hook.measure(model, loader)

    # by hand: plain forward hooks, log-softmax CE, the HSIC form of CKA
    feats = {'s': [], 't': []}
    model.student.backbone.pool.register_forward_hook(
        lambda m, i, o: feats['s'].append(o.flatten(1)))
    model.teacher.backbone.layer3.register_forward_hook(
        lambda m, i, o: feats['t'].append(o.flatten(1)))
    ces = []
    model.eval()
    with torch.no_grad():
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            logits = model.student(data['inputs'], mode='tensor')
            model.teacher(data['inputs'], mode='tensor')
            labels = data['data_samples']['gt_label']
            ces.append(-logits.log_softmax(1).gather(1, labels[:, None])[:, 0])
    ce = float(torch.cat(ces)[:36].double().mean())
    x = torch.cat(feats['s'])[:36].double()
    y = torch.cat(feats['t'])[:36].double()
    k, l = x @ x.t(), y @ y.t()  # noqa: E741
    cka = float(hsic(k, l) / torch.sqrt(hsic(k, k) * hsic(l, l)))
    assert got['ce'] == pytest.approx(ce, rel=1e-6)
    assert got['cka'] == pytest.approx(cka, rel=1e-6)
    assert got['autokd_reward'] == pytest.approx(1 - (ce + (1 - cka)), rel=1e-6)
    assert 0 < cka < 1 and ce > 0


def test_the_logged_reward_reaches_the_trial_attributes(tmp_path, fmnist_root):
    work = tmp_path / 'run'
    config = tmp_path / 'kd_reward.py'
    config.write_text(f"_base_ = ['{ROOT}/configs/fashion_mnist/kd_fmnist.py']\n"
                      "custom_hooks = [dict(type='AutoKDRewardHook', student='backbone.pool',"
                      " teacher='backbone.pool')]\n")
    cmd = [sys.executable, 'tools/train.py', str(config), '--work-dir', str(work),
           '--cfg-options', *data_options(fmnist_root), 'model.teacher_checkpoint=None',
           'train_cfg.max_epochs=1', 'val_dataloader.dataset.indices=48']
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = metric_from_scalars(read_scalars(str(work)), 'accuracy/top1')
    ce, cka = result.attrs['ce'], result.attrs['cka']
    assert result.attrs['autokd_reward'] == pytest.approx(1 - (ce + (1 - cka)))
    assert math.isfinite(ce) and 0 <= cka <= 1


def test_an_autokd_search_without_the_features_fails_before_any_trial(tmp_path):
    cfg = Config.fromfile('configs/search/autokd_mcts_fmnist.py')
    assert cfg.search.searcher.reward == 'autokd'  # the Auto-KD config uses it
    cfg.search.proxy.pop('autokd_reward')
    with pytest.raises(SearchError, match='search.proxy.autokd_reward=dict'):
        prepare_search(cfg, str(tmp_path / 'search'))
    assert not (tmp_path / 'search' / 'trials').exists()


def test_the_hook_refuses_a_distiller_without_an_online_teacher():
    hook = AutoKDRewardHook(student='backbone.pool', teacher='backbone.pool')
    runner = type('R', (), {'model': torch.nn.Linear(2, 2)})()
    with pytest.raises(ValueError, match='online teacher'):
        hook.before_train(runner)


def test_the_sparsity_schedule_is_zhu_and_guptas_cubic():
    from kdzoo.engine.sparse import SparseTrainingHook, cubic_sparsity
    assert cubic_sparsity(0.8, 0.0) == 0.0
    assert cubic_sparsity(0.8, 0.5) == pytest.approx(0.8 * (1 - 0.5 ** 3))
    assert cubic_sparsity(0.8, 2.0) == pytest.approx(0.8)
    hook = SparseTrainingHook(sparsity=0.8, start=0.2, end=0.6)
    assert hook.sparsity_at(20, 100) == 0.0 and hook.sparsity_at(60, 100) == pytest.approx(0.8)
    assert SparseTrainingHook(sparsity=0.5).sparsity_at(0, 100) == 0.5  # from the start
    with pytest.raises(ValueError, match=r'sparsity=1.0 must be in \[0, 1\)'):
        SparseTrainingHook(sparsity=1.0)
