"""What the offline teacher store saves (docs/teaching.md), in one command:

    python tools/analysis/benchmark_teacher_store.py [--out docs/teacher_store_benchmark.json]
        [--reps 20] [--threads 2] [--search-trials 16] [--skip-search]

1. Step time, one process, interleaved repetitions, medians: a student-only training step,
   a distillation step reading the teacher from a store (``same/rc`` views, 4 replays), and
   the same step with the online teacher, for two pairs: resnet32x4 -> resnet8x4 on
   CIFAR-100 shapes (3x32x32, 100 classes; KD on logits + a spatial term on the last stage)
   and the Fashion-MNIST pair (resnet20 -> resnet8 at half width). The data are CIFAR-100
   pickles / Fashion-MNIST IDX files written in their real formats with random pixels; the
   teachers are random inits saved as checkpoints (speed does not depend on the weights).
2. Store size: disk bytes per sample (all views) for float32, float16 and top-k logits.
3. A ``--search-trials`` random search on Fashion-MNIST (2000 images, 1 epoch per trial,
   ``same/ic`` views) with ``search.proxy.teacher_store`` against the same search with the
   online teacher: wall times and their ratio (the store's build time reported apart).
"""
import argparse
import copy
import json
import os
import os.path as osp
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from torch.utils.data import default_collate  # noqa: E402

from kdzoo.models import set_config_dir  # noqa: E402
from kdzoo.registry import DATASETS, MODELS  # noqa: E402
from kdzoo.teaching import TeacherStore, apply_teaching  # noqa: E402
from kdzoo.teaching.build import build_store  # noqa: E402
from kdzoo.utils import register_all_modules  # noqa: E402


def write_cifar100(root: str, n: int) -> str:
    folder = osp.join(root, 'cifar-100-python')
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for split in ('train', 'test'):
        fine = rng.integers(0, 100, n).tolist()
        entry = {b'data': rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                 b'fine_labels': fine, b'coarse_labels': [f // 5 for f in fine]}
        with open(osp.join(folder, split), 'wb') as f:
            pickle.dump(entry, f, protocol=2)
    with open(osp.join(folder, 'meta'), 'wb') as f:
        pickle.dump({b'fine_label_names': [f'c{i}'.encode() for i in range(100)]}, f)
    return folder


def write_fmnist(root: str, n: int) -> str:
    sys.path.insert(0, osp.join(ROOT, 'tests'))
    from conftest import make_pattern_images, write_idx
    for prefix in ('train', 't10k'):
        images, labels = make_pattern_images(n, 0)
        write_idx(osp.join(root, f'{prefix}-images-idx3-ubyte.gz'), images)
        write_idx(osp.join(root, f'{prefix}-labels-idx1-ubyte.gz'), labels)
    return root


def pair_config(name: str, data_root: str, ckpt: str, n: int) -> Config:
    if name == 'resnet32x4->resnet8x4':
        cfg = Config.fromfile(osp.join(ROOT, 'configs/kd/kd_resnet32x4_resnet8x4_cifar100.py'))
        cfg.teaching = dict(mode='same/rc', size=32)
        cfg.model.distill_terms = list(cfg.model.distill_terms) + [dict(
            name='at', student='backbone.layer3', teacher='backbone.layer3',
            transforms=['satt'], distance='l2', weight=1000.0)]
        teacher_cfg = 'configs/cifar100/resnet32x4_cifar100.py'
    else:
        cfg = Config.fromfile(osp.join(ROOT, 'configs/funmatch/funmatch_fmnist.py'))
        cfg.teaching.mode = 'same/rc'
        cfg.teaching.pop('mixup_alpha')
        teacher_cfg = 'configs/fashion_mnist/teacher_fmnist.py'
    set_config_dir(cfg, osp.join(ROOT, 'configs/kd/x.py'))
    if not osp.isfile(ckpt):
        torch.manual_seed(0)
        teacher = MODELS.build(Config.fromfile(osp.join(ROOT, teacher_cfg)).model)
        torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    cfg.model.teacher = osp.join(ROOT, teacher_cfg)
    cfg.model.teacher_checkpoint = ckpt
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.train_dataloader.dataset.indices = n
    return cfg


def step_times(cfg: Config, store: str, reps: int, batch_size: int) -> dict:
    online_cfg = apply_teaching(copy.deepcopy(cfg))  # Config.copy() shares nested dicts
    stored_cfg = copy.deepcopy(cfg)
    stored_cfg.teaching.store = store
    apply_teaching(stored_cfg)
    dataset = DATASETS.build(stored_cfg.train_dataloader.dataset)
    batches = [default_collate([dataset.get_seeded(i, 0, epoch)
                                for i in range(b * batch_size, (b + 1) * batch_size)])
               for epoch in range(2) for b in range(len(dataset) // batch_size)]
    models = dict(student=MODELS.build(online_cfg.model.student),
                  offline=MODELS.build(stored_cfg.model), online=MODELS.build(online_cfg.model))
    wrappers = {k: OptimWrapper(torch.optim.SGD(m.parameters(), lr=0.01))
                for k, m in models.items()}
    for model in models.values():
        model.train()
    times = {k: [] for k in models}
    for rep in range(reps + 2):  # two warm-up rounds
        batch = batches[rep % len(batches)]
        for key, model in models.items():
            data = batch if key != 'student' else dict(
                inputs=batch['inputs'], data_samples=dict(gt_label=batch['data_samples']
                                                          ['gt_label']))
            start = time.perf_counter()
            model.train_step(data, wrappers[key])
            if rep >= 2:
                times[key].append((time.perf_counter() - start) * 1000)
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(ms=med, offline_over_student=med['offline'] / med['student'],
                online_over_student=med['online'] / med['student'])


def store_sizes(cfg: Config, work: str) -> dict:
    sizes = {}
    for label, kwargs in (('float32', {}), ('float16', dict(dtype='float16')),
                          ('float16, top-5 logits', dict(dtype='float16', topk=5))):
        out = osp.join(work, 'size_' + label.replace(', ', '_').replace(' ', ''))
        build_store(copy.deepcopy(cfg), out, replays=4, progress=False, **kwargs)
        store = TeacherStore.open(out)
        sizes[label] = {path: store.bytes_per_sample([path]) for path in store.outputs}
        sizes[label]['all'] = store.bytes_per_sample()
    return sizes


def timed_search(config: str, work: str, options) -> float:
    start = time.time()
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, 'tools/search.py', config, '--work-dir', work,
                           '--cfg-options', *options], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    return time.time() - start


def search_ratio(work: str, trials: int) -> dict:
    """The same random search with and without the store (real Fashion-MNIST); the store is
    built from the search config itself (its trials' data, its space's outputs)."""
    config = osp.join(work, 'search.py')
    ckpt = osp.join(work, 'fmnist_search_teacher.pth')
    pair_config('fmnist', None, ckpt, 2000)  # saves the (random) teacher checkpoint
    with open(config, 'w') as f:
        f.write('\n'.join([
            f"_base_ = ['{ROOT}/configs/funmatch/funmatch_fmnist.py']",
            "teaching = dict(mode='same/ic', mixup_alpha=None)",
            f'search = dict(searcher=dict(type="random"), n_trials={trials}, seed=0,',
            '    space=dict(terms=[dict(student="backbone.fc", teacher="backbone.fc",',
            '        input_rank=2, transform_slots=[["no", "softmax_C", "norm_C"]],',
            '        distance=["kl", "l2", "cosine"], weight=[0.5, 1.0], tau=[1.0, 4.0])]),',
            '    validation=dict(val_size=2000, seed=0, stratified=True),',
            '    proxy=dict(train_indices=2000, max_epochs=1))', '']))
    options = {'model.teacher_checkpoint': ckpt, 'train_dataloader.num_workers': 0,
               'train_dataloader.persistent_workers': False, 'val_dataloader.num_workers': 0,
               'val_dataloader.persistent_workers': False}
    cfg = set_config_dir(Config.fromfile(config))
    cfg.merge_from_dict(options)
    store = osp.join(work, 'search_store')
    start = time.time()
    build_store(cfg, store, replays=1, progress=False)
    build_seconds = time.time() - start
    cmdline = [f'{k}={v}' for k, v in options.items()]
    online = timed_search(config, osp.join(work, 'search_online'), cmdline)
    offline = timed_search(config, osp.join(work, 'search_offline'),
                           cmdline + [f'search.proxy.teacher_store={store}'])
    return dict(trials=trials, online_s=round(online, 1), offline_s=round(offline, 1),
                store_build_s=round(build_seconds, 1), offline_over_online=offline / online)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='docs/teacher_store_benchmark.json')
    parser.add_argument('--reps', type=int, default=20)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--search-trials', type=int, default=16)
    parser.add_argument('--skip-search', action='store_true')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    register_all_modules()
    results = dict(device=dict(kind='cpu', processor=platform.processor() or
                               platform.machine(), threads=args.threads,
                               torch=torch.__version__),
                   batch_size=args.batch_size, reps=args.reps, pairs={})
    with tempfile.TemporaryDirectory() as work:
        n = args.batch_size * 4
        roots = dict(cifar=write_cifar100(work, n), fmnist=write_fmnist(
            osp.join(work, 'fmnist'), n) if os.makedirs(osp.join(work, 'fmnist')) is None
            else None)
        for name, root in (('resnet32x4->resnet8x4', roots['cifar']),
                           ('fmnist resnet20->resnet8x0.5', roots['fmnist'])):
            cfg = pair_config(name, root, osp.join(work, f'{len(results["pairs"])}.pth'), n)
            store = osp.join(work, f'store{len(results["pairs"])}')
            build_store(copy.deepcopy(cfg), store, replays=4, progress=False)
            pair = step_times(cfg, store, args.reps, args.batch_size)
            pair['store_bytes_per_sample'] = store_sizes(cfg, osp.join(work, name[:5]))
            results['pairs'][name] = pair
            print(name, json.dumps(pair, indent=1), flush=True)
        if not args.skip_search:
            results['search'] = search_ratio(work, args.search_trials)
            print('search', results['search'], flush=True)
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=1)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
