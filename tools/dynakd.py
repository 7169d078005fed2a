"""DynaKD's two stages for a teacher pool: ``python tools/dynakd.py CONFIG [--work-dir DIR]``.

CONFIG is a distiller config with ``teachers=[...]``, ``pool=dict(mode='sample')`` and a
``dynakd`` dict (see configs/dynakd/fmnist/dynakd.py and docs/dynakd.md)::

    dynakd = dict(
        search=dict(type='DynaKDSearchHook', dataset=..., theta_lr=0.05, ...),
        candidates=['learned', dict(type='sharpened', temperature=0.5), 'argmax', 'uniform'],
        metric='accuracy/top1', direction='maximize')

1. Search: CONFIG (without ``dynakd``) plus the ``DynaKDSearchHook`` is written to
   ``WORK_DIR/search/config.py`` and trained (bi-level: theta-steps on the held-out split,
   sampled-teacher w-steps); the learned theta is read from ``WORK_DIR/search/theta.json``.
2. Evaluation: M candidate distributions are derived from theta (:func:`derive_candidates`);
   each is one ordinary config, ``WORK_DIR/candidates/<name>/config.py`` (CONFIG with
   ``model.pool.theta`` set), trained from scratch by the search's trial runner
   (:class:`kdzoo.search.runner.TrialRunner`, ``tools/train.py`` in a child process); the
   value is ``metric`` at the last validation (the config's val split: carve it from the
   training data). The best is copied to ``WORK_DIR/best_config.py``; all are listed in
   ``WORK_DIR/dynakd_results.json`` / ``.md``. ``--test`` then evaluates the best one on the
   test split, once (``WORK_DIR/test_metrics.json``).

A stage whose results are already in the work dir is not run again (re-running the command
continues an interrupted run); ``--theta`` skips the search with a given distribution.
"""
import argparse
import copy
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmengine.config import Config, DictAction  # noqa: E402

from kdzoo.models import set_config_dir  # noqa: E402
from kdzoo.search.runner import TrialRunner, atomic_write  # noqa: E402
from kdzoo.search.settings import Objective, add_custom_hook  # noqa: E402
from kdzoo.utils import check_keys, merge_cfg_options, register_all_modules  # noqa: E402

DYNAKD_KEYS = ('search', 'candidates', 'metric', 'direction')
#: Candidate kinds and their arguments.
CANDIDATE_TYPES = {
    'learned': (),            # the searched theta as it is
    'uniform': (),            # 1/N each
    'argmax': (),             # all mass on the searched arg-max member (one teacher)
    'sharpened': ('temperature',),  # theta^(1/T), renormalised (T < 1 sharpens)
    'topk': ('k',),           # theta restricted to its k largest members, renormalised
}
DEFAULT_CANDIDATES = ('learned', dict(type='sharpened', temperature=0.5), 'argmax', 'uniform')


def _candidate_spec(spec) -> Tuple[str, dict]:
    if isinstance(spec, str):
        spec = dict(type=spec)
    if not isinstance(spec, dict) or 'type' not in spec:
        raise ValueError(f'dynakd.candidates: {spec!r} is not a candidate; give a name or a '
                         f'dict(type=...); valid types: {", ".join(CANDIDATE_TYPES)}')
    spec = dict(spec)
    kind = spec.pop('type')
    if kind not in CANDIDATE_TYPES:
        raise ValueError(f'dynakd.candidates: unknown type {kind!r}; valid: '
                         f'{", ".join(CANDIDATE_TYPES)}')
    check_keys(spec, CANDIDATE_TYPES[kind], f'dynakd.candidates {kind!r}')
    for key in CANDIDATE_TYPES[kind]:
        if key not in spec:
            raise KeyError(f'dynakd.candidates {kind!r} needs {key}=...')
    return kind, spec


def _normalised(values: Dict[str, float]) -> Dict[str, float]:
    total = sum(values.values())
    return {k: v / total for k, v in values.items()}


def derive_candidates(theta: Dict[str, float],
                      specs: Sequence = DEFAULT_CANDIDATES) -> List[Tuple[str, Dict[str, float]]]:
    """The candidate distributions ``[(name, {member: p})]`` derived from the searched
    ``theta`` (:data:`CANDIDATE_TYPES`); a candidate equal to an earlier one (within 1e-6)
    is dropped, so no distribution is trained twice."""
    names = list(theta)
    if not names:
        raise ValueError('derive_candidates: theta is empty')
    out = []
    for spec in specs:
        kind, args = _candidate_spec(spec)
        if kind == 'learned':
            name, dist = 'learned', _normalised(theta)
        elif kind == 'uniform':
            name, dist = 'uniform', {n: 1.0 / len(names) for n in names}
        elif kind == 'argmax':
            best = max(names, key=lambda n: theta[n])
            name, dist = f'argmax_{best}', {n: float(n == best) for n in names}
        elif kind == 'sharpened':
            t = float(args['temperature'])
            if t <= 0:
                raise ValueError(f'dynakd.candidates sharpened: temperature={t} must be > 0')
            name = f'sharpened_T{t:g}'
            dist = _normalised({n: theta[n] ** (1.0 / t) for n in names})
        else:  # topk
            k = int(args['k'])
            if not 1 <= k <= len(names):
                raise ValueError(f'dynakd.candidates topk: k={k} must be in [1, {len(names)}]')
            top = sorted(names, key=lambda n: -theta[n])[:k]
            name = f'top{k}'
            dist = _normalised({n: theta[n] if n in top else 0.0 for n in names})
        if any(all(abs(dist[n] - other[n]) < 1e-6 for n in names) for _, other in out):
            continue
        out.append((name, dist))
    return out


def read_theta(work_dir: str) -> Dict[str, float]:
    """The final theta of a search run (its ``theta.json``)."""
    path = osp.join(work_dir, 'theta.json')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found: the search run wrote no theta (is '
                                f'DynaKDSearchHook in its custom_hooks?)')
    with open(path) as f:
        return dict(json.load(f)['theta'])


def base_config(cfg: Config) -> Config:
    """CONFIG without the ``dynakd`` dict: an ordinary training config."""
    base = copy.deepcopy(cfg)
    base.pop('dynakd', None)
    return base


def check_config(cfg: Config) -> dict:
    """The ``dynakd`` dict with defaults, after checking the config is a sample pool."""
    if 'dynakd' not in cfg:
        raise KeyError('the config has no "dynakd" dict; see docs/dynakd.md')
    settings = dict(cfg.dynakd)
    check_keys(settings, DYNAKD_KEYS, 'dynakd')
    model = cfg.get('model') or {}
    if not model.get('teachers'):
        raise ValueError('tools/dynakd.py needs a distiller with a teacher pool '
                         '(model.teachers=[...])')
    mode = (model.get('pool') or {}).get('mode', 'mean')
    if mode != 'sample':
        raise ValueError(f"tools/dynakd.py needs model.pool.mode='sample'; got {mode!r}")
    if not isinstance(settings.get('search'), dict):
        raise KeyError("dynakd.search must be the DynaKDSearchHook dict, e.g. "
                       "dict(type='DynaKDSearchHook', dataset=...)")
    settings['search'] = dict(settings['search'])
    settings['search'].setdefault('type', 'DynaKDSearchHook')
    if settings['search']['type'] != 'DynaKDSearchHook':
        raise ValueError(f"dynakd.search.type={settings['search']['type']!r}; valid: "
                         f"DynaKDSearchHook")
    settings.setdefault('candidates', list(DEFAULT_CANDIDATES))
    for spec in settings['candidates']:
        _candidate_spec(spec)
    settings.setdefault('metric', 'accuracy/top1')
    settings.setdefault('direction', 'maximize')
    Objective(settings['metric'], settings['direction'])
    return settings


def _done(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def train_config(runner: TrialRunner, cfg: Config, run_dir: str, comment: str) -> dict:
    """Write ``cfg`` to ``run_dir/config.py`` and train it; the result (cached in
    ``run_dir/result.json``, so a finished run is not trained again)."""
    result_path = osp.join(run_dir, 'result.json')
    cached = _done(result_path)
    if cached is not None and cached.get('error') is None:
        return cached
    config_path = runner.write_config(cfg, osp.join(run_dir, 'config.py'), comment)
    try:
        result = runner.train(config_path, run_dir)
    finally:  # MMEngine dumps its own copy over config.py; put the plain one back
        runner.write_config(cfg, config_path, comment)
    out = dict(value=result.value, error=result.error, config=config_path,
               metrics=result.attrs.get('metrics', {}))
    atomic_write(result_path, json.dumps(out, indent=1))
    return out


def run_dynakd(config: str, work_dir: str, cfg_options: Optional[dict] = None,
               theta: Optional[Dict[str, float]] = None, test: bool = False,
               env: Optional[dict] = None, log=print) -> dict:
    """Both stages (see the module doc); returns the summary written to
    ``WORK_DIR/dynakd_results.json``."""
    register_all_modules()
    cfg = Config.fromfile(config)
    merge_cfg_options(cfg, cfg_options)
    set_config_dir(cfg, config)  # relative teacher configs stay anchored at CONFIG
    settings = check_config(cfg)
    base = base_config(cfg)
    objective = Objective(settings['metric'], settings['direction'])
    runner = TrialRunner(base, None, work_dir, objective=objective, count_params=False,
                         env=env, header='DynaKD ')
    os.makedirs(work_dir, exist_ok=True)
    # --- 1. search ---
    if theta is None:
        search_cfg = add_custom_hook(copy.deepcopy(base), copy.deepcopy(settings['search']))
        search_dir = osp.join(work_dir, 'search')
        log(f'DynaKD search: training {osp.join(search_dir, "config.py")}')
        result = train_config(runner, search_cfg, search_dir,
                              f'DynaKD search stage of {config}\nre-run: python '
                              f'tools/train.py THIS_FILE --work-dir DIR')
        if result['error']:
            raise RuntimeError(f'the DynaKD search failed: {result["error"]}')
        theta = read_theta(search_dir)
        source = osp.join(search_dir, 'theta.json')
    else:
        source = 'given (--theta)'
    log('DynaKD theta: ' + ', '.join(f'{n}={p:.4f}' for n, p in theta.items()))
    # --- 2. evaluation ---
    candidates = derive_candidates(theta, settings['candidates'])
    rows = []
    for name, dist in candidates:
        cand_cfg = copy.deepcopy(base)
        cand_cfg.model.pool.theta = {n: round(p, 6) for n, p in dist.items()}
        run_dir = osp.join(work_dir, 'candidates', name)
        log(f'DynaKD candidate {name}: theta={cand_cfg.model.pool.theta}')
        result = train_config(runner, cand_cfg, run_dir,
                              f'DynaKD candidate {name!r} derived from theta of {source}\n'
                              f're-run: python tools/train.py THIS_FILE --work-dir DIR')
        rows.append(dict(name=name, theta=dict(cand_cfg.model.pool.theta), **result))
        shown = 'FAILED: ' + result['error'] if result['error'] else \
            f'{objective.metric}={result["value"]:.4f}'
        log(f'DynaKD candidate {name}: {shown}')
    ok = [r for r in rows if r['error'] is None]
    if not ok:
        raise RuntimeError('every DynaKD candidate failed: ' +
                           '; '.join(f'{r["name"]}: {r["error"]}' for r in rows))
    best = max(ok, key=lambda r: objective.sign * r['value'])
    with open(best['config']) as f:
        text = f.read()
    header = (f'# DynaKD best candidate {best["name"]!r}: {objective.metric}='
              f'{best["value"]:.4f} on the validation split (last epoch), picked among '
              f'{[r["name"] for r in rows]} in {work_dir}\n')
    atomic_write(osp.join(work_dir, 'best_config.py'), header + text)
    summary = dict(config=config, theta=theta, theta_source=source, metric=objective.metric,
                   direction=objective.direction, candidates=rows, best=best['name'])
    if test:
        summary['test'] = test_best(best, work_dir)
        log(f'DynaKD best {best["name"]} on the test split: {summary["test"]}')
    atomic_write(osp.join(work_dir, 'dynakd_results.json'), json.dumps(summary, indent=1))
    atomic_write(osp.join(work_dir, 'dynakd_results.md'), results_markdown(summary))
    log(f'DynaKD best: {best["name"]} ({objective.metric}={best["value"]:.4f}); '
        f'{osp.join(work_dir, "best_config.py")}')
    return summary


def test_best(best: dict, work_dir: str) -> dict:
    """The best candidate's last checkpoint on the test split (tools/test.py, once)."""
    run_dir = osp.dirname(best['config'])
    with open(osp.join(run_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    out = osp.join(work_dir, 'test_metrics.json')
    if osp.exists(out):
        os.remove(out)
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'test.py'), best['config'], checkpoint,
           '--work-dir', osp.join(work_dir, 'test'), '--out', out]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    # The metrics file is the result (tools/test.py may exit with its metrics as status).
    if not osp.isfile(out):
        raise RuntimeError(f'tools/test.py failed on {best["config"]} (exit code '
                           f'{proc.returncode}):\n{proc.stderr[-2000:]}')
    with open(out) as f:
        return json.load(f)


def results_markdown(summary: dict) -> str:
    lines = [f'# DynaKD: {summary["config"]}', '',
             'theta (' + summary['theta_source'] + '): ' +
             ', '.join(f'{n}={p:.4f}' for n, p in summary['theta'].items()), '',
             f'| candidate | theta | {summary["metric"]} (val, last epoch) |',
             '| --- | --- | --- |']
    for row in summary['candidates']:
        value = 'failed' if row['error'] else f'{row["value"]:.4f}'
        mark = ' (best)' if row['name'] == summary['best'] else ''
        theta = ', '.join(f'{n}={p:.3f}' for n, p in row['theta'].items())
        lines.append(f'| {row["name"]}{mark} | {theta} | {value} |')
    if 'test' in summary:
        lines += ['', f'test split, best candidate: {summary["test"]}']
    return '\n'.join(lines) + '\n'


def parse_theta(text: str) -> Dict[str, float]:
    """``--theta a=0.5,b=0.5`` or a theta.json file."""
    if osp.isfile(text):
        with open(text) as f:
            data = json.load(f)
        return dict(data.get('theta', data))
    out = {}
    for item in text.split(','):
        name, sep, value = item.partition('=')
        if not sep:
            raise ValueError(f'--theta {text!r}: give member=p pairs separated by commas, or '
                             f'a theta.json file')
        out[name.strip()] = float(value)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--work-dir', help='default: work_dirs/<config name>')
    parser.add_argument('--theta', help='skip the search: member=p,... or a theta.json')
    parser.add_argument('--test', action='store_true',
                        help='evaluate the best candidate on the test split once')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override entries of CONFIG (every stage)')
    args = parser.parse_args(argv)
    work_dir = args.work_dir or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    theta = parse_theta(args.theta) if args.theta else None
    try:
        run_dynakd(args.config, work_dir, args.cfg_options, theta=theta, test=args.test)
    except (KeyError, ValueError, RuntimeError, FileNotFoundError) as err:
        print(f'{type(err).__name__}: {err}', file=sys.stderr)
        raise SystemExit(1)


if __name__ == '__main__':
    main()
