"""The shipped search configs give the same trials, values and best trial as the search
package did before its restructure (``golden/search_golden.json``, recorded with the same
seeds and the same synthetic objective), through the entry point of ``tools/search.py``."""
import hashlib
import json
import os.path as osp
import warnings

import optuna
import pytest
from mmengine.config import Config

from kdzoo.search import TrialResult, build_search, load_search, run_search
from kdzoo.search.trials import params_key

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GOLDEN = osp.join(osp.dirname(osp.abspath(__file__)), 'golden', 'search_golden.json')
CONFIGS = ['mcts_kd_fmnist', 'mcts_feature_kd_fmnist', 'nsga2_kd_fmnist', 'random_kd_fmnist',
           'sh_kd_fmnist', 'tabular_fmnist_space']


def _digest(params, budget=None) -> bytes:
    return hashlib.sha256((params_key(params) + f'|{budget}').encode()).digest()


def synthetic(job, heartbeat=None) -> TrialResult:
    """A deterministic stand-in for training: a value from a hash of the parameters (plus
    the rung budget), some failures, and suppressed rungs."""
    params, budget = job.params, job.budget
    d, base = _digest(params, budget), _digest(params)
    value = int.from_bytes(base[:4], 'big') / 2**32 * 80 + (budget or 0) * 2 + d[8] / 255
    attrs = dict(param_count=int(10000 * float(params.get('student.width_mult', 1.0))
                                 * float(params.get('student.depth_mult', 1.0))) + base[5])
    if base[6] % 11 == 0:
        return TrialResult(error='synthetic failure', attrs=attrs)
    if budget is not None and d[7] % 13 == 0:
        return TrialResult(error='suppressed: synthetic',
                           attrs=dict(attrs, suppressed=dict(reason='synthetic', iter=3)))
    return TrialResult(value=round(value, 6), attrs=attrs)


def record(study, searcher) -> dict:
    trials = []
    for t in study.get_trials(deepcopy=False):
        roles = {k: t.user_attrs[k] for k in sorted(t.user_attrs)
                 if k.startswith('sh_') or k in ('pruned_reason', 'param_count')}
        trials.append(dict(number=t.number, state=t.state.name, params=t.params,
                           values=t.values, roles=roles))
    best = searcher.best_trial(study)
    return json.loads(json.dumps(dict(trials=trials, best=None if best is None
                                      else best.number), default=str))


@pytest.mark.parametrize('name', CONFIGS)
def test_same_trials_as_before_the_restructure(name, tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings('ignore', category=optuna.exceptions.ExperimentalWarning)
    with open(GOLDEN) as f:
        expected = json.load(f)[name]
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'search', f'{name}.py'))
    if cfg.search.searcher.get('type') == 'mcts':
        # the golden trials were recorded with plain UCT, before RAVE became the default
        cfg.merge_from_dict({'search.searcher.rave_k': 0.0})
    settings, space = load_search(cfg)
    storage = optuna.storages.InMemoryStorage()
    search = build_search(settings, space, storage, synthetic, study_name='golden')
    if hasattr(search.searcher, 'poll_interval'):
        search.searcher.poll_interval = 0.0
    run_search(search, log=None)
    got = record(search.study, search.searcher)
    assert [t['number'] for t in got['trials']] == [t['number'] for t in expected['trials']]
    for mine, theirs in zip(got['trials'], expected['trials']):
        assert mine == theirs, f'trial {theirs["number"]}'
    assert got['best'] == expected['best']
