"""The evidence scripts' shared helpers: rows of mean +- std per method, the table and its
protocol card written side by side."""
import glob
import json
import math
import os.path as osp
import re

import pytest

from kdzoo.benchmarks.runs import (evaluate_checkpoint, last_metric, mean_std, method_rows,
                                   write_evidence)

METHODS = {'vanilla': ('a.py', 'student alone'), 'kd': ('b.py', 'kl on logits')}


def results():
    return {('vanilla', 0): dict(value=40.0, seconds=10.0),
            ('vanilla', 1): dict(value=42.0, seconds=11.0),
            ('kd', 0): dict(value=45.0, seconds=20.0),
            ('kd', 1): dict(value=48.0, seconds=21.0)}


def test_rows_hold_each_seed_and_the_sample_std():
    rows = method_rows(results(), METHODS, ['vanilla', 'kd'], [0, 1])
    assert [r['method'] for r in rows] == ['vanilla', 'kd']
    assert rows[1]['values'] == [45.0, 48.0] and rows[1]['mean'] == 46.5
    assert math.isclose(rows[1]['std'], round(math.sqrt(4.5), 2))  # n - 1 in the std
    assert rows[0]['seconds'] == [10.0, 11.0] and rows[0]['config'] == 'a.py'
    assert mean_std([3.0]) == (3.0, 0.0)


def test_the_table_names_its_card_and_the_difference_to_vanilla(tmp_path):
    rows = method_rows(results(), METHODS, ['vanilla', 'kd'], [0, 1])
    table = write_evidence(rows, dict(seeds=[0, 1]), str(tmp_path / 'work'), str(tmp_path),
                           'demo', 'test top-1 (%)', 'tools/analysis/demo.py')
    assert '| kd | kl on logits | 46.50 +- 2.12 | +5.50 |' in table
    text = (tmp_path / 'demo_table.md').read_text()
    assert text.startswith('<!-- written by tools/analysis/demo.py; protocol: demo_card.json')
    assert json.loads((tmp_path / 'demo_card.json').read_text()) == dict(seeds=[0, 1])
    saved = json.loads((tmp_path / 'work' / 'results.json').read_text())
    assert saved['rows'][1]['values'] == [45.0, 48.0]


def test_last_metric_reads_the_last_logged_value_and_names_a_missing_one(tmp_path):
    scalars = tmp_path / '20261203_000000' / 'vis_data' / 'scalars.json'
    scalars.parent.mkdir(parents=True)
    scalars.write_text('{"mIoU": 10.0, "step": 1}\n{"loss": 1.0}\n{"mIoU": 12.5, "step": 2}\n')
    assert last_metric(str(tmp_path), 'mIoU') == 12.5
    with pytest.raises(RuntimeError, match='no coco/bbox_mAP logged'):
        last_metric(str(tmp_path), 'coco/bbox_mAP')


def test_evaluate_checkpoint_names_a_failed_test_and_caches_a_result(tmp_path):
    config = 'configs/fashion_mnist/teacher_fmnist.py'
    with pytest.raises(RuntimeError, match='tools/test.py .* failed'):
        evaluate_checkpoint(str(tmp_path / 'a'), config, str(tmp_path / 'missing.pth'))
    assert not (tmp_path / 'a' / 'test_result.json').exists()     # nothing cached
    (tmp_path / 'b').mkdir()
    (tmp_path / 'b' / 'test_result.json').write_text('{"accuracy/top1": 90.94}')
    assert evaluate_checkpoint(str(tmp_path / 'b'), config, 'never/read.pth') == 90.94


DOCS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'docs')


def test_every_measured_table_in_the_docs_names_a_protocol_card():
    """Every table an evidence script writes points to its card, and every card says at
    least where it ran and with which seeds."""
    tables = glob.glob(osp.join(DOCS, '*_table.md'))
    assert len(tables) >= 2
    for table in tables:
        first = open(table).readline()
        card = re.search(r'protocol: (\S+_card\.json)', first)
        assert card, f'{table}: no protocol card named in {first!r}'
        assert osp.isfile(osp.join(DOCS, card.group(1))), card.group(1)
    for card in glob.glob(osp.join(DOCS, '*_card.json')):
        protocol = json.load(open(card))
        assert {'device', 'seeds'} <= set(protocol), card


def test_proxy_rank_agreement_of_the_searched_vs_handmade_script(tmp_path):
    """--proxy's figures: seed-to-seed Spearman over the rows, and proxy vs full means read
    back from the full table that write_evidence wrote."""
    import importlib.util
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        'svh', osp.join(root, 'tools', 'analysis', 'searched_vs_handmade_fmnist.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    full = [dict(method=m, what=m, config=None, values=[v, v], mean=v, std=0.0, seconds=[1, 1])
            for m, v in (('vanilla', 80.0), ('kd', 82.5), ('at', 79.0), ('dist', 81.0))]
    write_evidence(full, dict(device='cpu', seeds=[0, 1]), str(tmp_path), str(tmp_path),
                   'full', 'top-1', 'x.py')
    means = tool.table_means(str(tmp_path / 'full_table.md'))
    assert means == {'vanilla': 80.0, 'kd': 82.5, 'at': 79.0, 'dist': 81.0}
    # three seeds: seeds 0 and 1 agree exactly, seed 2 reverses them (rho = -1 to both)
    proxy = [dict(method=m, values=[a, a, -a], mean=a) for m, a in
             (('vanilla', 1.0), ('kd', 4.0), ('at', 2.0), ('dist', 3.0))]
    got = tool.rank_agreement(proxy, means)
    assert got['rows'] == 4
    assert got['seed_to_seed_spearman'] == pytest.approx((1.0 - 1.0 - 1.0) / 3, abs=1e-3)
    # proxy means rank kd > dist > at > vanilla; full: kd > dist > vanilla > at
    assert got['proxy_vs_full_spearman'] == pytest.approx(0.8)
    assert 'proxy_vs_full_spearman' not in tool.rank_agreement(proxy, {})


def test_overhead_card_names_the_configs_own_validation_split():
    import importlib.util
    import sys
    root = osp.dirname(DOCS)
    sys.path.insert(0, osp.join(root, 'tools', 'analysis'))
    try:
        spec = importlib.util.spec_from_file_location(
            'benchmark_trial_overhead',
            osp.join(root, 'tools', 'analysis', 'benchmark_trial_overhead.py'))
        tool = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tool)
    finally:
        sys.path.pop(0)
    text = tool.validation_of(osp.join(root, 'configs', 'search', 'tabular_fmnist_v2_space.py'))
    assert "'val_size': 5000" in text and 'held out of the training data' in text
    text = tool.validation_of(osp.join(root, 'configs', 'search', 'random_kd_fmnist.py'))
    assert "'val_size': 0.1" in text
