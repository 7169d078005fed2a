"""The offline teacher store: exact against the online teacher, aligned with augmentation,
refused when built for something else, resumable, shardable."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from kdzoo.teaching import StoreMismatch, TeacherStore
from kdzoo.teaching.build import _Writer, build_store
from kdzoo.teaching.dataset import pick_replay
from kdzoo.teaching.store import compress_topk, expand_topk
from teaching_helpers import ROOT, batch_of, build, losses_of, save_teacher, teaching_cfg


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    return save_teacher(str(tmp_path_factory.mktemp('teacher') / 'teacher.pth'))


@pytest.fixture(scope='module')
def store(tmp_path_factory, fmnist_root, ckpt):
    out = str(tmp_path_factory.mktemp('store') / 'same_ic')
    build_store(teaching_cfg(fmnist_root, ckpt, 'same/ic'), out, replays=3, progress=False)
    return out


def _online_and_stored(fmnist_root, ckpt, store, mode='same/ic', **teaching):
    online, _ = build(teaching_cfg(fmnist_root, ckpt, mode, **teaching))
    stored, ds = build(teaching_cfg(fmnist_root, ckpt, mode, store=store, **teaching))
    stored.student.load_state_dict(online.student.state_dict())  # one student, two sources
    return online, stored, ds


@pytest.mark.parametrize('epoch', [0, 3])
def test_stored_losses_equal_the_online_teachers_on_the_same_views(fmnist_root, ckpt, store,
                                                                   epoch):
    online, stored, ds = _online_and_stored(fmnist_root, ckpt, store)
    assert stored.teacher is None and stored.teacher_models() == []  # no teacher built
    batch = batch_of(ds, range(8), epoch=epoch)
    # the student's view of every sample is one of the stored views, drawn per epoch
    assert batch['data_samples']['teacher_replay'].tolist() == [
        pick_replay(0, epoch, i, 3) for i in range(8)]
    a, b = losses_of(online, batch), losses_of(stored, batch)
    assert set(a) == {'loss_kl', 'loss_feat'}  # logits and a spatial feature map
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)
    assert a['loss_kl'] > 0 and a['loss_feat'] > 0


def test_a_stored_independent_view_is_the_teachers_view(tmp_path, fmnist_root, ckpt):
    out = str(tmp_path / 'ind')
    build_store(teaching_cfg(fmnist_root, ckpt, 'ind/rc'), out, replays=4, progress=False)
    online, stored, ds = _online_and_stored(fmnist_root, ckpt, out, 'ind/rc')
    batch = batch_of(ds, range(8), epoch=1)
    assert 'teacher_inputs' not in batch  # the store stands in for the teacher's view
    views = torch.stack([ds.teacher_view_of(i, int(r), 0) for i, r in
                         enumerate(batch['data_samples']['teacher_replay'])])
    assert batch['data_samples']['teacher_replay'].tolist() != \
        [pick_replay(0, 1, i, 4) for i in range(8)]  # another draw than the student's
    a = losses_of(online, dict(batch, teacher_inputs=views))
    b = losses_of(stored, batch)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


def test_fix_ic_ens_stores_the_crop_ensemble(tmp_path, fmnist_root, ckpt):
    out = str(tmp_path / 'ens')
    build_store(teaching_cfg(fmnist_root, ckpt, 'fix/ic_ens', ens_crops=3), out,
                progress=False)
    online, stored, ds = _online_and_stored(fmnist_root, ckpt, out, 'fix/ic_ens', ens_crops=3)
    assert TeacherStore.open(out).views == 1
    batch = batch_of(ds, range(6), epoch=2)
    online_batch = batch_of(build(teaching_cfg(fmnist_root, ckpt, 'fix/ic_ens',
                                               ens_crops=3))[1], range(6), epoch=2)
    assert torch.equal(batch['inputs'], online_batch['inputs'])
    a, b = losses_of(online, online_batch), losses_of(stored, batch)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


def test_an_fp16_store_is_within_its_stated_tolerance(tmp_path, fmnist_root, ckpt):
    out = str(tmp_path / 'fp16')
    build_store(teaching_cfg(fmnist_root, ckpt, 'same/ic'), out, replays=2, dtype='float16',
                progress=False)
    online, stored, ds = _online_and_stored(fmnist_root, ckpt, out)
    batch = batch_of(ds, range(8))
    a, b = losses_of(online, batch), losses_of(stored, batch)
    for key in a:  # the documented tolerance of float16 stores: 1e-3 relative
        torch.testing.assert_close(b[key], a[key], rtol=1e-3, atol=1e-5)


def test_a_topk_store_keeps_the_teachers_top_probabilities(tmp_path, fmnist_root, ckpt):
    out = str(tmp_path / 'topk')
    build_store(teaching_cfg(fmnist_root, ckpt, 'same/ic'), out, replays=2, topk=3,
                progress=False)
    manifest = json.load(open(osp.join(out, 'manifest.json')))
    assert manifest['outputs']['backbone.fc']['topk'] == 3
    assert 'topk' not in manifest['outputs']['backbone.layer2']  # maps are kept whole
    online, stored, ds = _online_and_stored(fmnist_root, ckpt, out)
    batch = batch_of(ds, range(8))
    data = online.data_preprocessor(batch, True)
    p = online.source.outputs(data['inputs'])['backbone.fc'].softmax(-1)
    q = stored.source.outputs(data['inputs'], data['data_samples'])['backbone.fc'].softmax(-1)
    top = p.topk(3, dim=-1).indices
    torch.testing.assert_close(q.gather(1, top), p.gather(1, top))
    full = TeacherStore.open(_full_store(tmp_path, fmnist_root, ckpt))
    topk_bytes = stored.source.store.bytes_per_sample(['backbone.fc'])
    assert topk_bytes < full.bytes_per_sample(['backbone.fc'])


def _full_store(tmp_path, fmnist_root, ckpt):
    out = str(tmp_path / 'full')
    build_store(teaching_cfg(fmnist_root, ckpt, 'same/ic', feature=False), out, replays=2,
                progress=False)
    return out


def test_topk_keeps_the_top_probabilities_exact_and_spreads_the_rest():
    logits = np.array([[2.0, -1.0, 0.5, 3.0, 0.0]], dtype=np.float32)
    values, index, lse = compress_topk(logits, 2)
    assert index.tolist() == [[3, 0]]
    full = torch.from_numpy(expand_topk(values, index, lse, 5))
    p, q = torch.softmax(torch.from_numpy(logits), -1), torch.softmax(full, -1)
    torch.testing.assert_close(q[0, [3, 0]], p[0, [3, 0]])
    rest = (1 - p[0, [3, 0]].sum()) / 3
    torch.testing.assert_close(q[0, [1, 2, 4]], rest.repeat(3))


def test_a_store_for_another_checkpoint_data_or_view_is_refused(tmp_path, fmnist_root, ckpt,
                                                                store):
    other = save_teacher(str(tmp_path / 'other.pth'), seed=1)
    with pytest.raises(StoreMismatch, match='checkpoint sha256'):
        build(teaching_cfg(fmnist_root, other, 'same/ic', store=store))
    with pytest.raises(StoreMismatch, match='dataset.length'):
        build(teaching_cfg(fmnist_root, ckpt, 'same/ic', store=store, indices=20))
    with pytest.raises(StoreMismatch, match=r'teacher_view.view.size: the store has \[28, 28\]'):
        build(teaching_cfg(fmnist_root, ckpt, 'same/ic', store=store, teacher_size=32))
    with pytest.raises(StoreMismatch, match='relation'):
        build(teaching_cfg(fmnist_root, ckpt, 'fix/cc', store=store))


def test_a_store_missing_a_terms_output_names_it(fmnist_root, ckpt, store):
    cfg = teaching_cfg(fmnist_root, ckpt, 'same/ic', store=store)
    cfg.model.distill_terms[1].teacher = 'backbone.layer3'
    cfg.model.distill_terms[1].student = 'backbone.layer3'
    with pytest.raises(KeyError, match="no output 'backbone.layer3'.*--outputs backbone.layer3"):
        build(cfg)
    with pytest.raises(FileNotFoundError, match='build_teacher_store.py'):
        build(teaching_cfg(fmnist_root, ckpt, 'same/ic', store=store + '_nowhere'))


def test_a_killed_build_resumes_to_the_uninterrupted_store(tmp_path, fmnist_root, ckpt,
                                                           store, monkeypatch):
    out = str(tmp_path / 'killed')
    write, calls = _Writer.write, []

    def dies_after_two(self, *args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return write(self, *args)

    monkeypatch.setattr(_Writer, 'write', dies_after_two)
    cfg = teaching_cfg(fmnist_root, ckpt, 'same/ic')
    with pytest.raises(KeyboardInterrupt):
        build_store(cfg, out, replays=3, batch_size=15, progress=False)
    with pytest.raises(RuntimeError, match='incomplete.*holds 10 of 24'):
        TeacherStore.open(out)
    monkeypatch.setattr(_Writer, 'write', write)
    build_store(teaching_cfg(fmnist_root, ckpt, 'same/ic'), out, replays=3, progress=False)
    a, b = TeacherStore.open(out), TeacherStore.open(store)
    for path in a.outputs:
        idx, views = np.arange(24).repeat(3), np.tile(np.arange(3), 24)
        np.testing.assert_array_equal(a.read(path, idx, views), b.read(path, idx, views))
    with pytest.raises(StoreMismatch, match='replays'):
        build_store(teaching_cfg(fmnist_root, ckpt, 'same/ic'), out, replays=2,
                    progress=False)


def test_shards_built_by_two_processes_make_one_store(tmp_path, fmnist_root, ckpt, store):
    out = str(tmp_path / 'sharded')
    cfg = teaching_cfg(fmnist_root, ckpt, 'same/ic')
    config = str(tmp_path / 'cfg.py')
    cfg.dump(config)
    procs = [subprocess.Popen([sys.executable, 'tools/build_teacher_store.py', config,
                               '--out', out, '--replays', '3', '--shard', f'{i}/2',
                               '--no-progress'], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    for proc in procs:
        output = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, output
    a, b = TeacherStore.open(out), TeacherStore.open(store)
    assert a.shards == 2
    idx, views = np.arange(24), np.arange(24) % 3
    for path in a.outputs:
        np.testing.assert_array_equal(a.read(path, idx, views), b.read(path, idx, views))
