"""The tabular search benchmark: table file, look-up objective, replay and its metrics
(no training)."""
import itertools
import math

import optuna
import pytest

from kdzoo.benchmarks.tabular import (BENCHMARKS, DEFAULT_TABLES, Table, TabularObjective,
                                      append_rows, best_so_far, default_tables,
                                      expected_random_hit, load_space, load_table, quantile,
                                      read_table_file, regret_curve, replay, row_key,
                                      seed_noise, summarize, trials_to_top, write_header)
from kdzoo.search import Job, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)
SEARCHERS = ['random', 'grid', 'mcts', 'nsga2', 'tpe']


def small_space():
    # 'satt' does not take rank-2 inputs: 4 of the 24 combinations per tail are invalid
    return SearchSpace.from_config(dict(terms=[dict(
        student='s', teacher='t', input_rank=2,
        transform_slots=[['no', 'tanh', 'satt']], distance=['kl', 'l2'],
        weight=[1.0, 5.0], tau=[1.0, 4.0])]))


def valid(space):
    out = []
    for path in itertools.product(*[range(len(d.labels)) for d in space.decisions]):
        params = space.labels_of(path)
        if space.check(params) is None:
            out.append(params)
    return out


def small_rows(space):
    """16 hand-made rows with distinct values 50, 51, ..., 65; the 'no/l2/5/4' one failed."""
    rows = []
    for i, params in enumerate(valid(space)):
        row = {k: str(v) for k, v in params.items()}  # as read from a CSV: strings
        row.update(metric=f'{50 + i:.4f}', train_s='1.0', final_loss='0.5', state='ok',
                   error='')
        if (params['kd0.transform0'], params['kd0.distance'], params['kd0.weight'],
                params['kd0.tau']) == ('no', 'l2', 5.0, 4.0):
            row.update(metric='nan', state='nan', error='non-finite training loss')
        rows.append(row)
    return rows


@pytest.fixture()
def small():
    space = small_space()
    return space, Table(space.names, small_rows(space))


def test_small_space_and_table(small):
    space, table = small
    assert len(space) == 16 and len(table) == 16
    assert table.missing(space) == []
    assert table.best == 65.0 and table.worst == 50.0
    # 15 ok rows: top 5 % = ceil(0.75) = the single best; top 20 % = the 3 best
    assert table.top_threshold(0.05) == 65.0
    assert table.top_threshold(0.2) == 63.0
    assert table.in_top(65.0) and not table.in_top(64.0) and not table.in_top(math.nan)


def test_file_round_trip_and_resume_keys(tmp_path, small):
    space, table = small
    path = str(tmp_path / 't.csv')
    write_header(path, ['made by hand', 'teacher: x; y; test top-1 90.00'], space.names)
    rows = small_rows(space)
    append_rows(path, rows[:5], space.names)
    append_rows(path, rows[5:], space.names)
    header, raw = read_table_file(path)
    assert header[0] == 'made by hand' and len(raw) == 16
    loaded = load_table(path, space)
    assert loaded.meta('teacher:') == 'x; y; test top-1 90.00'
    for params in valid(space):
        mine, theirs = loaded.lookup(params), table.lookup(params)
        assert mine['state'] == theirs['state']
        if theirs['state'] == 'ok':
            assert mine['metric'] == theirs['metric']
        else:  # NaN on both sides, never on one
            assert math.isnan(mine['metric']) and math.isnan(theirs['metric'])
    # keys do not depend on how a number is written
    p = valid(space)[0]
    assert row_key(p, space.names) == row_key({k: str(v) for k, v in p.items()}, space.names)
    assert row_key({**p, 'kd0.weight': 1}, space.names) == row_key(p, space.names)
    with pytest.raises(ValueError, match='parameter columns'):
        load_table(path, SearchSpace.from_config(dict(terms=[dict(
            student='s', teacher='t', distance=['kl', 'l2'])])))


def test_several_seed_files_average_into_one_table(tmp_path, small):
    space, _ = small
    paths = []
    for seed, shift in enumerate((0.0, 2.0, -1.0)):
        rows = small_rows(space)
        for row in rows:
            if row['state'] == 'ok':
                row['metric'] = f'{float(row["metric"]) + shift:.4f}'
        if seed == 2:   # fails in one seed only: not ok in the mean table
            rows[0].update(metric='nan', state='failed', error='boom')
        path = str(tmp_path / f't{seed}.csv')
        write_header(path, [f'seed {seed}'], space.names)
        append_rows(path, rows, space.names)
        paths.append(path)
    one = load_table(paths[0], space)
    mean = load_table(paths, space)
    assert len(mean) == 16 and mean.header[0] == 'seed 0' and 'mean of 3' in mean.header[-1]
    for params in valid(space)[1:]:
        row, ref = mean.lookup(params), one.lookup(params)
        if ref['state'] == 'ok':
            assert row['metric'] == pytest.approx(ref['metric'] + 1.0 / 3)
            assert row['metric_seeds'] == pytest.approx(
                [ref['metric'], ref['metric'] + 2, ref['metric'] - 1])
        else:
            assert row['state'] == 'nan'
    first = mean.lookup(valid(space)[0])
    assert first['state'] == 'failed' and math.isnan(first['metric'])
    append_rows(paths[1], [dict(valid(space)[0], **{'kd0.tau': 2.0}, metric='1')],
                space.names)
    with pytest.raises(ValueError, match='other distillers'):
        load_table(paths, space)


def test_seed_noise_on_hand_made_seed_files(tmp_path, small):
    """Spearman per pair of seed files, mean |difference| and the per-row sample std, on
    values where the three pairs differ (seed 2 reverses two neighbours of seed 1)."""
    space, _ = small
    base = [float(r['metric']) for r in small_rows(space)]
    shifts = (0.0, 1.0, 1.0)
    paths = []
    for seed, shift in enumerate(shifts):
        rows = small_rows(space)
        ok = [r for r in rows if r['state'] == 'ok']
        values = [float(r['metric']) for r in ok]
        if seed == 2:                                 # swap the two lowest values
            values[0], values[1] = values[1], values[0]
        for row, value in zip(ok, values):
            row['metric'] = f'{value + shift:.4f}'
        paths.append(str(tmp_path / f's{seed}.csv'))
        write_header(paths[-1], [f'seed {seed}'], space.names)
        append_rows(paths[-1], rows, space.names)
    assert seed_noise(load_table(paths[0], space)) is None   # one file: no agreement
    noise = seed_noise(load_table(paths, space))
    n = len([v for v in base if v == v])                     # 15 ok rows (one is NaN)
    rho_swap = 1 - 6 * 2 / (n * (n * n - 1))                 # one swap of neighbours
    assert noise['seeds'] == 3 and noise['rows'] == n
    assert noise['spearman_pairs'] == pytest.approx({'0-1': 1.0, '0-2': rho_swap,
                                                     '1-2': rho_swap})
    assert noise['spearman'] == pytest.approx((1 + 2 * rho_swap) / 3)
    # |diff| per pair: 0-1: 1 on every row; 0-2: 1, but 2 and 0 on the swapped rows (mean
    # 1); 1-2: 0, but 1 on the two swapped rows
    assert noise['mean_abs_diff'] == pytest.approx((1 + 1 + 2 / n) / 3)
    # std of (x, x+1, x+1) = sqrt(1/3): most rows; median and p90 take it
    assert noise['row_std_median'] == pytest.approx(math.sqrt(1 / 3))


def test_objective_returns_the_table_value(small):
    space, table = small
    objective = TabularObjective(table, space, param_count=123)
    for params in valid(space):
        row = table.lookup(params)
        result = objective.evaluate(Job(0, params))
        if row['state'] == 'ok':
            assert result.error is None and result.value == row['metric']
            assert result.attrs['param_count'] == 123
        else:
            assert result.value is None and result.error.startswith('nan')
    missing = dict(valid(space)[0], **{'kd0.tau': 2.0})
    assert 'not in the table' in objective.evaluate(Job(0, missing)).error
    # as a plain Optuna objective: invalid chains pruned, failed rows FAIL
    study = optuna.create_study(direction='maximize',
                                sampler=optuna.samplers.BruteForceSampler(seed=0))
    study.optimize(objective, n_trials=24)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) == 8
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    assert study.best_value == 65.0


def test_metrics_on_hand_made_values(small):
    _, table = small
    values = [55.0, math.nan, 60.0, 58.0, 65.0, 50.0]
    assert best_so_far(table, values, 7)[:2] == [55.0, 55.0]
    assert best_so_far(table, values, 7)[-1] == 65.0       # kept after the run ended
    assert math.isnan(best_so_far(table, [math.nan], 2)[0])
    assert regret_curve(table, values, 6) == [10.0, 10.0, 5.0, 5.0, 0.0, 0.0]
    assert regret_curve(table, [math.nan, 52.0], 2) == [15.0, 13.0]  # best - worst first
    assert trials_to_top(table, values) == 5
    assert trials_to_top(table, values, n_trials=4) is None
    assert trials_to_top(table, values, fraction=0.2) == 5
    assert trials_to_top(table, [64.0, 63.0], fraction=0.2) == 1
    assert quantile([1, 2, 3, 4], 0.5) == 2.5
    assert quantile([1, 2, math.inf], 0.5) == 2 and quantile([1, math.inf, math.inf], 0.5) \
        == math.inf
    assert expected_random_hit(15, 1) == 8.0


@pytest.mark.parametrize('searcher', SEARCHERS)
def test_replay_each_searcher(small, searcher):
    space, table = small
    runs = [replay(table, space, searcher, seed, 15) for seed in range(3)]
    for run in runs:
        assert len(run.values) == 15            # 15 budget trials (pruned draws are free)
        assert all(space.check(p) is None for p in run.params)
        assert len({row_key(p, space.names) for p in run.params}) == 15   # no repeats
        for p, v in zip(run.params, run.values):
            row = table.lookup(p)
            assert (math.isnan(v) and row['state'] != 'ok') or v == row['metric']
    stats = summarize(table, runs, 15, checkpoints=(5, 10))
    for curve in (regret_curve(table, r.values, 15) for r in runs):
        assert all(r >= 0 for r in curve)
        assert all(a >= b for a, b in zip(curve, curve[1:]))   # regret never grows
    for hit, run in zip(stats['hits'], runs):
        assert hit is None or 1 <= hit <= 15
        assert (hit is None) == (65.0 not in run.values)
    assert stats['reached'] == sum(h is not None for h in stats['hits'])
    assert stats['median_regret@10'] >= 0 and len(stats['median_curve']) == 15
    # replays are reproducible per seed
    again = replay(table, space, searcher, 1, 15)
    assert again.values == runs[1].values


def test_mcts_replay_of_the_whole_small_space_finds_the_best(small):
    space, table = small
    run = replay(table, space, dict(type='mcts', exploration=0.5), 0, 30)
    assert len(run.values) == 16 and 'were tried' in run.stop_reason
    assert trials_to_top(table, run.values) is not None


@pytest.mark.parametrize('version', sorted(BENCHMARKS))
def test_shipped_table_covers_its_space(version):
    space = load_space(version=version)
    table = load_table(space=space, version=version)  # the mean of the seed files
    files = default_tables(version)
    assert len(files) == 3 and 'mean of 3 tables' in table.header[-1]
    for path in files:                              # each seed file covers the space
        seed_file = load_table(path, space)
        assert len(seed_file) == len(space) and seed_file.missing(space) == []
    assert table.names == space.names
    assert table.missing(space) == []
    assert len(table) == len(space) >= 48
    assert table.meta('teacher:') and 'test top-1' in table.meta('teacher:')
    s = table.summary()
    assert s['states'].get('ok', 0) >= 0.9 * len(table)
    assert 0 < table.worst <= table.top_threshold() <= table.best <= 100
    # every searcher replays on the real table
    for searcher in SEARCHERS:
        run = replay(table, space, searcher, 0, 15)
        assert len(run.values) == 15


def test_v2_table_was_built_on_a_validation_split_of_the_training_data():
    """v2 selects on training images only: its proxy carves a validation split and reads
    the teacher from a store; the seed files say so in their headers."""
    from mmengine.config import Config

    from kdzoo.models.teachers import resolve_config_path
    from kdzoo.search import search_settings
    cfg = Config.fromfile(resolve_config_path(BENCHMARKS['v2']['space'], config_dir=None))
    search = search_settings(cfg.search)
    assert search['validation']['val_size'] == 5000 and search['proxy']['teacher_store']
    assert DEFAULT_TABLES == default_tables('v2')            # the default benchmark
    table = load_table(version='v2')
    assert BENCHMARKS['v2']['space'] in table.meta('space:')
    assert 'teacher_store' in table.meta('proxy:')
    with pytest.raises(KeyError, match="valid: \\['v1', 'v2'\\]"):
        default_tables('v3')


def test_replaying_successive_halving_runs_its_rungs(small):
    """The replay goes through the search entry point, so halving plans rungs: survivors
    are promoted (same parameters, a larger budget, resumed) instead of one flat loop."""
    space, table = small
    run = replay(table, space, dict(type='successive_halving', n_candidates=8, eta=2,
                                    min_budget=1, max_budget=4), 0, 8)
    # 8 candidates at 1 epoch, 4 at 2, 2 at 4: promotions repeat their candidate's params
    distinct = {tuple(sorted(p.items())) for p in run.params}
    assert len(run.values) > len(distinct) >= 6
    assert 'bracket' in run.stop_reason


def test_random_reference_and_reorder(small):
    from kdzoo.benchmarks.tabular import random_hit_median, reorder
    assert random_hit_median(10, 10) == 1 and random_hit_median(2, 1) == 1
    assert random_hit_median(4, 1) == 2                  # P(hit in 2) = 1/2
    space, table = small
    tau_first = reorder(space, ['kd0.tau'])
    assert tau_first.names[0] == 'kd0.tau' and len(tau_first) == len(space) == 16
    assert space.names[0] == 'kd0.transform0'            # the original is unchanged
    run = replay(table, tau_first, 'mcts', 0, 16)
    assert len(run.values) == 16 and trials_to_top(table, run.values) is not None
    with pytest.raises(ValueError, match='before'):
        reorder(space, ['kd0.distance', 'kd0.transform0'])


def test_replay_tool_on_seed_files(tmp_path, small):
    """tools/analysis/replay_search.py: several seed files are averaged; the report has the
    table's description, per-searcher medians and tests against random."""
    import importlib.util
    import json
    import os.path as osp
    space, _ = small
    config = tmp_path / 'space.py'
    config.write_text('search = dict(space=dict(terms=[dict(student="s", teacher="t", '
                      'input_rank=2, transform_slots=[["no", "tanh", "satt"]], '
                      'distance=["kl", "l2"], weight=[1.0, 5.0], tau=[1.0, 4.0])]))\n')
    paths = []
    for seed, shift in enumerate((0.0, 1.0)):
        rows = small_rows(space)
        for row in rows:
            if row['state'] == 'ok':
                row['metric'] = f'{float(row["metric"]) + shift * (float(row["metric"]) % 3):.4f}'
        paths.append(str(tmp_path / f'seed{seed}.csv'))
        write_header(paths[-1], ['student: 100 parameters'], space.names)
        append_rows(paths[-1], rows, space.names)
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        'replay_search', osp.join(root, 'tools', 'analysis', 'replay_search.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'out'
    results = tool.main(['--table', *paths, '--space-config', str(config), '--seeds', '6',
                         '--n-trials', '12', '--searchers', 'random', 'mcts',
                         'nsga2:population_size=4', 'tpe', '--out-dir', str(out),
                         '--card', str(tmp_path / 'card.json')])
    assert set(results) == {'random', 'mcts', 'nsga2:population_size=4', 'tpe'}
    assert all(r['runs'] == 6 for r in results.values())
    text = (out / 'results.md').read_text()
    assert 'the mean of 2 training seeds' in text and '| kd0.tau |' in text
    assert text.count('| `') == 4
    assert 'p (fewer than random) | p (fewer than tpe)' in text
    assert '| `tpe` |' in text and text.split('| `tpe` |')[1].split('|')[4].strip() == '-'
    card = json.loads((tmp_path / 'card.json').read_text())
    assert card['seeds'] == list(range(6)) and card['replay']['n_trials'] == 12
    assert card['table']['files'] == paths
    saved = json.loads((out / 'results.json').read_text())
    assert len(saved['runs']['mcts']) == 6 and (out / 'regret.png').stat().st_size > 0


def test_builder_trains_a_row_as_tools_train_would(monkeypatch):
    """A table row is trained like a search trial: the config's teaching mode wraps the
    train data and hands the store to the distiller (so the v2 rows never run the teacher).
    The Runner is replaced by a stub that records the config it was given."""
    import importlib.util
    import os.path as osp

    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        'build_tabular_benchmark',
        osp.join(root, 'tools', 'analysis', 'build_tabular_benchmark.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    seen = {}

    class Stub:
        @staticmethod
        def from_cfg(cfg):
            seen['cfg'] = cfg
            raise RuntimeError('stop here')

    monkeypatch.setattr(tool, 'Runner', Stub)
    cfg = Config(dict(
        teaching=dict(mode='fix/rs', size=28, store='some/store'),
        model=dict(type='Distiller', student=dict(type='s'), teacher='t.py'),
        train_dataloader=dict(sampler=dict(type='SeededSampler', shuffle=True),
                              dataset=dict(type='FashionMNIST', pipeline=[
            dict(type='RandomCropPad', size=28, padding=2),
            dict(type='PackClsInputs')]))))
    value, _, _, state, error = tool.run_training(cfg, 'accuracy/top1')
    assert state == 'failed' and 'stop here' in error and math.isnan(value)
    built = seen['cfg']
    assert built.train_dataloader.dataset.type == 'TeachingDataset'
    assert built.model.teaching['store'] == 'some/store'
