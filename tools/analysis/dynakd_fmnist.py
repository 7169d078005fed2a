"""The DynaKD evidence on Fashion-MNIST (docs/dynakd.md), in one command:

    OMP_NUM_THREADS=1 python tools/analysis/dynakd_fmnist.py [--work-dir work_dirs/dynakd_fmnist]
        [--seeds 0 1 2] [--skip-speed]

1. The pool (configs/dynakd/fmnist/): teachers resnet32, resnet20, resnet14 and the teacher
   assistant resnet8 (distilled from resnet32), each trained once on 20000 training images
   outside the dev split; their top-1 on the dev split and the test split.
2. For each seed (``randomness.seed``: the student's initialisation, data order and
   augmentation, the sampled teachers): the student alone, KD from each single member, the
   pool with ``mean`` and ``sum``, and DynaKD with ``tools/dynakd.py`` (search, then the
   candidates ``learned``, ``sharpened_T0.5``, ``argmax_<member>``, ``uniform``, each trained
   from scratch; ``uniform`` is the "sample with uniform theta" row), plus ``sample`` with
   uniform theta and ``scale='normalized'``. Every run is an ordinary config under
   ``WORK_DIR/seed<S>/<row>/config.py``; the dev top-1 is the last validation of the run, the
   test top-1 is its last-epoch student on the 10000 test images, measured once here.
   "best single teacher" and "DynaKD" pick, per seed, on the dev split.
3. Speed: a ``sample`` step with a pool of 4 over a single-teacher step (same student,
   batch, teacher architecture), median over interleaved repetitions.

Writes ``WORK_DIR/results.json``, ``results.md`` and ``protocol_card.json``. Finished runs
are found again (``result.json`` in their dir), so an interrupted call continues.
"""
import argparse
import copy
import importlib.util
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

from kdzoo.models import build_teacher, set_config_dir  # noqa: E402
from kdzoo.registry import DATASETS  # noqa: E402
from kdzoo.search.runner import TrialRunner, atomic_write  # noqa: E402
from kdzoo.search.settings import Objective  # noqa: E402
from kdzoo.utils import merge_cfg_options, register_all_modules  # noqa: E402

CFG = 'configs/dynakd/fmnist'
TEACHERS = dict(  # member name -> its config
    resnet32=f'{CFG}/teacher_resnet32.py', resnet20=f'{CFG}/teacher_resnet20.py',
    resnet14=f'{CFG}/teacher_resnet14.py', ta_resnet8=f'{CFG}/assistant_resnet8.py')
TEACHER_DIRS = dict(resnet32='resnet32', resnet20='resnet20', resnet14='resnet14',
                    ta_resnet8='assistant_resnet8')
METRIC = 'accuracy/top1'


def load_dynakd_tool():
    spec = importlib.util.spec_from_file_location('dynakd_tool',
                                                  osp.join(ROOT, 'tools', 'dynakd.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DYNAKD = load_dynakd_tool()


def log(message: str) -> None:
    print(time.strftime('%H:%M:%S'), message, flush=True)


class Evidence:

    def __init__(self, work_dir: str, seeds, teacher_epochs: int):
        register_all_modules()
        self.work_dir = work_dir
        self.seeds = list(seeds)
        self.teacher_epochs = teacher_epochs
        base = Config.fromfile(osp.join(ROOT, CFG, 'pool_mean.py'))
        self.runner = TrialRunner(base, None, work_dir, objective=Objective(METRIC),
                                  count_params=False,
                                  env=dict(OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS',
                                                                          '1')))
        self.times = {}

    # --- runs ---
    def ckpt(self, member: str) -> str:
        return osp.join(self.work_dir, 'teachers', TEACHER_DIRS[member],
                        f'epoch_{self.teacher_epochs}.pth')

    def teacher_options(self) -> dict:
        """Where the pool's checkpoints are (the configs name work_dirs/dynakd_fmnist/...)."""
        options = {f'model.teachers.{i}.teacher_checkpoint': self.ckpt(name)
                   for i, name in enumerate(TEACHERS)}
        return options

    def train(self, config: str, run_dir: str, options: dict) -> dict:
        cfg = Config.fromfile(osp.join(ROOT, config))
        merge_cfg_options(cfg, options)
        set_config_dir(cfg, osp.join(ROOT, config))
        start = time.time()
        result = DYNAKD.train_config(self.runner, cfg, run_dir,
                                     f'DynaKD evidence run of {config} with {options}')
        if result['error']:
            raise RuntimeError(f'{run_dir}: {result["error"]}')
        self.times.setdefault(run_dir, round(time.time() - start, 1))
        return result

    def evaluate(self, config: str, checkpoint: str, split: str) -> float:
        """Top-1 (%) of the model of ``config`` with ``checkpoint`` on ``split`` ('dev': the
        held-out part of the training set; 'test': the test set), in this process."""
        cfg = Config.fromfile(osp.join(ROOT, CFG, 'split.py'))
        loader = cfg.val_dataloader if split == 'dev' else cfg.test_dataloader
        dataset = DATASETS.build(copy.deepcopy(loader.dataset))
        model = build_teacher(osp.join(ROOT, config), checkpoint=checkpoint)
        correct = total = 0
        batch_size = 500
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                items = [dataset[i] for i in range(start, min(start + batch_size,
                                                              len(dataset)))]
                batch = dict(inputs=[it['inputs'] for it in items],
                             data_samples=dict(gt_label=torch.tensor(
                                 [int(it['data_samples']['gt_label']) for it in items])))
                data = model.data_preprocessor(
                    dict(inputs=torch.stack(batch['inputs']),
                         data_samples=batch['data_samples']), False)
                logits = model(data['inputs'], mode='tensor')
                correct += int((logits.argmax(1) == data['data_samples']['gt_label']).sum())
                total += len(items)
        return 100.0 * correct / total

    # --- 1. the pool ---
    def teachers(self) -> dict:
        out = {}
        for name, config in TEACHERS.items():
            run_dir = osp.join(self.work_dir, 'teachers', TEACHER_DIRS[name])
            options = {'train_cfg.max_epochs': self.teacher_epochs,
                       'param_scheduler.0.T_max': self.teacher_epochs}
            if name == 'ta_resnet8':
                options['model.teacher_checkpoint'] = self.ckpt('resnet32')
            log(f'teacher {name}: {config}')
            self.train(config, run_dir, options)
            params = sum(p.numel() for p in build_teacher(
                osp.join(ROOT, config), checkpoint=self.ckpt(name)).parameters())
            out[name] = dict(config=config, params=params,
                             dev=self.evaluate(config, self.ckpt(name), 'dev'),
                             test=self.evaluate(config, self.ckpt(name), 'test'))
            log(f'teacher {name}: dev {out[name]["dev"]:.2f}, test {out[name]["test"]:.2f}')
        return out

    # --- 2. the students ---
    def student_row(self, seed: int, row: str, config: str, options: dict) -> dict:
        run_dir = osp.join(self.work_dir, f'seed{seed}', row)
        log(f'seed {seed}: {row}')
        result = self.train(config, run_dir, {'randomness.seed': seed, **options})
        return self.measured(run_dir, result['value'])

    def measured(self, run_dir: str, dev: float) -> dict:
        ckpt = osp.join(run_dir, 'student_latest.pth')
        if not osp.isfile(ckpt):  # a plain classifier's own checkpoint
            with open(osp.join(run_dir, 'last_checkpoint')) as f:
                ckpt = f.read().strip()
        test = self.evaluate(f'{CFG}/student.py', ckpt, 'test')
        log(f'  {osp.relpath(run_dir, self.work_dir)}: dev {dev:.2f}, test {test:.2f}')
        return dict(dev=dev, test=test, run_dir=run_dir, seconds=self.times.get(run_dir))

    def seed_rows(self, seed: int) -> dict:
        rows = {}
        pool = self.teacher_options()
        rows['student alone'] = self.student_row(seed, 'student', f'{CFG}/student.py', {})
        for name, config in TEACHERS.items():
            rows[f'KD from {name}'] = self.student_row(
                seed, f'kd_{name}', f'{CFG}/kd_single.py',
                {'model.teacher': config, 'model.teacher_checkpoint': self.ckpt(name)})
        rows['pool mean'] = self.student_row(seed, 'pool_mean', f'{CFG}/pool_mean.py', pool)
        rows['pool sum'] = self.student_row(seed, 'pool_sum', f'{CFG}/pool_sum.py', pool)
        rows['sample, uniform theta, scale=normalized'] = self.student_row(
            seed, 'sample_uniform_normalized', f'{CFG}/pool_sample.py',
            {**pool, 'model.pool.scale': 'normalized'})
        work = osp.join(self.work_dir, f'seed{seed}', 'dynakd')
        log(f'seed {seed}: DynaKD (tools/dynakd.py)')
        start = time.time()
        summary = DYNAKD.run_dynakd(osp.join(ROOT, CFG, 'dynakd.py'), work,
                                    {'randomness.seed': seed, **pool},
                                    env=self.runner.env, log=lambda m: log('  ' + m))
        self.times.setdefault(work, round(time.time() - start, 1))
        candidates = {}
        for cand in summary['candidates']:
            run_dir = osp.dirname(cand['config'])
            candidates[cand['name']] = dict(self.measured(run_dir, cand['value']),
                                            theta=cand['theta'])
        rows['sample, uniform theta (paper scale)'] = candidates['uniform']
        rows['sample, learned theta (DynaKD search)'] = candidates['learned']
        best = dict(candidates[summary['best']], picked=summary['best'])
        rows['DynaKD: best candidate on dev'] = best
        singles = {k: v for k, v in rows.items() if k.startswith('KD from')}
        name = max(singles, key=lambda k: singles[k]['dev'])
        rows['best single teacher (picked on dev)'] = dict(singles[name], picked=name)
        return dict(rows=rows, theta=summary['theta'], candidates=candidates,
                    dynakd_seconds=self.times.get(work))  # search + every candidate


# --- 3. speed ---
def speed(reps: int = 30, batch_size: int = 128) -> dict:
    """A ``sample`` step of a pool of 4 resnet20 teachers over a single resnet20 teacher's
    step (forward + backward + SGD step, same student), interleaved, median; and the
    heterogeneous pool (resnet32/20/14/8, uniform theta) over the mean of its members' single
    steps (means: the sampled member changes the cost)."""
    from kdzoo.models import Distiller
    register_all_modules()
    pre = dict(type='ImgDataPreprocessor', mean=[72.94], std=[90.0])

    def clf(arch, **kw):
        return dict(type='ImageClassifier', data_preprocessor=pre,
                    backbone=dict(type=arch, num_classes=10, in_channels=1, **kw))

    term = [dict(student='backbone.fc', teacher='backbone.fc', distance='kl', tau=4.0,
                 weight=0.9)]
    student = clf('resnet8', width_mult=0.5)

    def step_fn(model):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        model.train()
        raw = dict(inputs=torch.randint(0, 256, (batch_size, 1, 28, 28), dtype=torch.uint8),
                   data_samples=dict(gt_label=torch.randint(0, 10, (batch_size,))))

        def step():
            losses = model(**model.data_preprocessor(raw, True), mode='loss')
            sum(v for k, v in losses.items() if 'loss' in k).backward()
            optimizer.step()
            optimizer.zero_grad()
        for _ in range(3):
            step()
        return step

    def timed(fns, n):
        times = {k: [] for k in fns}
        for _ in range(n):
            for key, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
        return times

    torch.manual_seed(0)
    single = Distiller(student=student, teacher=clf('resnet20'), distill_terms=term,
                       student_loss_weight=0.1)
    pool4 = Distiller(student=student, teachers=[dict(name=f't{i}', teacher=clf('resnet20'))
                                                 for i in range(4)],
                      pool=dict(mode='sample'), distill_terms=term, student_loss_weight=0.1)
    t = timed(dict(single=step_fn(single), pool=step_fn(pool4)), reps)
    homogeneous = dict(single_ms=1e3 * statistics.median(t['single']),
                       pool_ms=1e3 * statistics.median(t['pool']))
    homogeneous['ratio'] = homogeneous['pool_ms'] / homogeneous['single_ms']
    archs = ['resnet32', 'resnet20', 'resnet14', 'resnet8']
    singles = {a: step_fn(Distiller(student=student, teacher=clf(a), distill_terms=term,
                                    student_loss_weight=0.1)) for a in archs}
    mixed = Distiller(student=student, teachers=[dict(name=a, teacher=clf(a)) for a in archs],
                      pool=dict(mode='sample'), distill_terms=term, student_loss_weight=0.1)
    t = timed(dict(pool=step_fn(mixed), **singles), reps)
    heterogeneous = dict(pool_ms=1e3 * statistics.mean(t['pool']),
                         mean_single_ms=1e3 * statistics.mean(
                             statistics.mean(t[a]) for a in archs),
                         single_ms={a: 1e3 * statistics.mean(t[a]) for a in archs})
    heterogeneous['ratio'] = heterogeneous['pool_ms'] / heterogeneous['mean_single_ms']
    return dict(batch_size=batch_size, reps=reps, threads=torch.get_num_threads(),
                device='cpu', homogeneous=homogeneous, heterogeneous=heterogeneous)


# --- reports ---
ROW_ORDER = ['student alone', 'KD from resnet32', 'KD from resnet20', 'KD from resnet14',
             'KD from ta_resnet8', 'best single teacher (picked on dev)', 'pool mean',
             'pool sum', 'sample, uniform theta (paper scale)',
             'sample, uniform theta, scale=normalized',
             'sample, learned theta (DynaKD search)', 'DynaKD: best candidate on dev']


def mean_std(values):
    values = list(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), std


def markdown(results: dict) -> str:
    seeds = results['seeds']
    lines = ['| row | test top-1 (%) | dev top-1 (%) | per seed (test) | picked |',
             '| --- | --- | --- | --- | --- |']
    for row in ROW_ORDER:
        per = [results['per_seed'][str(s)]['rows'][row] for s in seeds]
        t, ts = mean_std(r['test'] for r in per)
        d, ds = mean_std(r['dev'] for r in per)
        picked = ', '.join(r['picked'] for r in per if 'picked' in r)
        lines.append(f'| {row} | {t:.2f} +- {ts:.2f} | {d:.2f} +- {ds:.2f} | '
                     + ' / '.join(f'{r["test"]:.2f}' for r in per) + f' | {picked} |')
    lines += ['', '| teacher | parameters | dev top-1 (%) | test top-1 (%) |',
              '| --- | --- | --- | --- |']
    for name, t in results['teachers'].items():
        lines.append(f'| {name} | {t["params"]:,} | {t["dev"]:.2f} | {t["test"]:.2f} |')
    lines += ['', '| seed | learned theta (' + ', '.join(TEACHERS) + ') | DynaKD pick |',
              '| --- | --- | --- |']
    for s in seeds:
        theta = results['per_seed'][str(s)]['theta']
        pick = results['per_seed'][str(s)]['rows']['DynaKD: best candidate on dev']['picked']
        lines.append(f'| {s} | ' + ', '.join(f'{theta[n]:.3f}' for n in TEACHERS) +
                     f' | {pick} |')
    if results.get('speed'):
        sp = results['speed']
        lines += ['', f'speed (CPU, {sp["threads"]} thread(s), batch {sp["batch_size"]}, '
                      f'{sp["reps"]} interleaved reps): sample step with 4 resnet20 teachers '
                      f'{sp["homogeneous"]["pool_ms"]:.1f} ms / single resnet20 teacher '
                      f'{sp["homogeneous"]["single_ms"]:.1f} ms = '
                      f'{sp["homogeneous"]["ratio"]:.3f} (median); mixed pool '
                      f'{sp["heterogeneous"]["pool_ms"]:.1f} ms / mean of its single-teacher '
                      f'steps {sp["heterogeneous"]["mean_single_ms"]:.1f} ms = '
                      f'{sp["heterogeneous"]["ratio"]:.3f} (means)']
    return '\n'.join(lines) + '\n'


def protocol_card(evidence: Evidence, results: dict) -> dict:
    student = Config.fromfile(osp.join(ROOT, CFG, 'student.py'))
    search = Config.fromfile(osp.join(ROOT, CFG, 'dynakd.py')).dynakd
    return dict(
        what='DynaKD evidence on Fashion-MNIST (tools/analysis/dynakd_fmnist.py)',
        data=dict(dataset='Fashion-MNIST (real, IDX files)',
                  dev_split='5000 images held out of the 60000 training images '
                            '(HeldOutSplit, seed 0); validation during training, the '
                            'theta-step, and every pick',
                  teacher_train='20000 other training images',
                  student_train='4000 of those 20000',
                  test='the 10000 test images, read once per trained student, last epoch'),
        augmentation='random crop 28 pad 2 + horizontal flip (training only)',
        teachers=dict(epochs=evidence.teacher_epochs, batch=128,
                      optimizer='SGD 0.1 momentum 0.9 nesterov wd 5e-4, cosine',
                      members=list(TEACHERS), assistant='ta_resnet8: resnet8 distilled '
                      'from resnet32 (KD tau 4, CE 0.1, KD 0.9)'),
        student=dict(arch='resnet8 width 0.5 (20k parameters)',
                     epochs=student.train_cfg.max_epochs,
                     batch=student.train_dataloader.batch_size,
                     optimizer='SGD 0.1 momentum 0.9 nesterov wd 5e-4, cosine to 0'),
        kd=dict(term="KL on logits, tau 4, weight 0.9; CE weight 0.1",
                sample_scale="theta_k (paper) unless scale=normalized (N * theta_k)"),
        dynakd_search={k: v for k, v in search.search.items() if k != 'dataset'},
        dynakd_search_data='theta-step batches from the dev split',
        dynakd_candidates=list(search.candidates),
        selection='last epoch; best single teacher and DynaKD candidate picked on the dev '
                  'split per seed',
        seeds=results['seeds'],
        device=dict(kind='cpu', processor=platform.processor() or platform.machine(),
                    threads=torch.get_num_threads(), torch=torch.__version__),
        wall_seconds=results.get('wall_seconds'))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/dynakd_fmnist')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--teacher-epochs', type=int, default=3)
    parser.add_argument('--skip-speed', action='store_true')
    parser.add_argument('--speed-only', action='store_true')
    parser.add_argument('--speed-reps', type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '1')))
    start = time.time()
    os.makedirs(args.work_dir, exist_ok=True)
    results = dict(seeds=args.seeds)
    if not args.speed_only:
        evidence = Evidence(args.work_dir, args.seeds, args.teacher_epochs)
        results['teachers'] = evidence.teachers()
        results['per_seed'] = {str(s): evidence.seed_rows(s) for s in args.seeds}
        results['run_seconds'] = evidence.times
    if not args.skip_speed:
        log('speed benchmark')
        results['speed'] = speed(reps=args.speed_reps)
        log(f'speed: {results["speed"]}')
    results['wall_seconds'] = round(time.time() - start, 1)
    atomic_write(osp.join(args.work_dir, 'results.json'), json.dumps(results, indent=1))
    if not args.speed_only:
        text = markdown(results)
        atomic_write(osp.join(args.work_dir, 'results.md'), text)
        card = protocol_card(evidence, results)
        atomic_write(osp.join(args.work_dir, 'protocol_card.json'), json.dumps(card, indent=1))
        print(text)
    log(f'done in {results["wall_seconds"]:.0f}s: {args.work_dir}/results.md')


if __name__ == '__main__':
    main()
