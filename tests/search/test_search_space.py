"""The search space: decisions, generated choices, validity, configs; searchers; proxy."""
import optuna
import pytest
from mmengine.config import Config

from kdzoo.kd.base import registered
from kdzoo.registry import KD_TRANSFORMS, SEARCHERS
from kdzoo.search import SearchSpace, apply_proxy, build_searcher, search_settings
from kdzoo.search.space import label_of


def logit_space(**extra):
    term = dict(student='backbone.fc', teacher='backbone.fc',
                transform_slots=[['no', 'softmax_C', 'satt'], ['no', 'flatten', 'tanh']],
                distance=['kl', 'at'], weight=[1.0, 5.0], tau=4.0)
    term.update(extra)
    return SearchSpace.from_config(dict(terms=[term], student=dict(width_mult=[0.5, 1.0])))


def test_decisions_in_auto_kd_order():
    space = logit_space()
    assert space.names == ['kd0.transform0', 'kd0.transform1', 'kd0.distance', 'kd0.weight',
                           'student.width_mult']
    assert space.distributions()['kd0.distance'].choices == ('kl', 'at')


def test_space_counts_and_enumerates_only_valid_chains():
    space = logit_space()
    # rank-2 logits: satt, flatten (rank 3/4 only) and at (rank 3/4) are never valid
    assert len(space) == 2 * 2 * 1 * 2 * 2
    assert [i for i, _ in space.valid_choices(0, None)] == [0, 1]
    good = dict(zip(space.names, ['softmax_C', 'tanh', 'kl', 5.0, 0.5]))
    assert space.check(good) is None
    bad = dict(good, **{'kd0.transform0': 'satt'})
    assert 'accepts ranks [3, 4] but receives rank 2' in space.check(bad)
    bad = dict(good, **{'kd0.distance': 'at'})
    assert 'distance' in space.check(bad)
    # a rank-4 input makes the spatial choices valid
    assert len(logit_space(input_rank=4)) > len(space)


def test_rank_changing_transforms_are_tracked():
    space = SearchSpace.from_config(dict(terms=[dict(
        student='s', teacher='t', input_rank=4,
        transform_slots=[['no', 'gap'], ['no', 'satt']], distance=['l2', 'at'])]))
    # gap: 4 -> 2, after which satt (3/4) and at (3/4) are invalid
    assert space.check({'kd0.transform0': 'gap', 'kd0.transform1': 'no',
                        'kd0.distance': 'l2'}) is None
    assert space.check({'kd0.transform0': 'gap', 'kd0.transform1': 'satt',
                        'kd0.distance': 'l2'}) is not None
    valid = {tuple(space.labels_of(p).values()) for p in _all_paths(space)
             if space.check(space.labels_of(p)) is None}
    assert len(valid) == len(space)


def _all_paths(space):
    import itertools
    return itertools.product(*[range(len(d.labels)) for d in space.decisions])


def test_generated_choices_follow_the_registry_filters():
    space = SearchSpace.from_config(dict(terms=[dict(
        student='s', teacher='t',
        transform_slots=dict(generate=dict(family='inter', rank=4, parametric=False),
                             num_slots=2),
        distance=dict(generate=dict(rank=2), exclude=['dkd']))]))
    expected = ['no'] + list(registered(KD_TRANSFORMS, family='inter', rank=4,
                                        parametric=False))
    assert space.decisions[0].labels == expected == space.decisions[1].labels
    assert 'dkd' not in space.decisions[2].labels and 'kl' in space.decisions[2].labels
    assert len(space) > 0


def test_materialize_writes_plain_term_lines():
    space = logit_space(connector=dict(type='LinearConnector', in_channels=4,
                                       out_channels=4), name='logits')
    terms, student, knobs = space.materialize(dict(zip(
        space.names, ['no', 'tanh', 'kl', 1.0, 0.5])))
    assert terms == [dict(student='backbone.fc', teacher='backbone.fc', transforms=['tanh'],
                          distance='kl', weight=1.0, tau=4.0,
                          connector=dict(type='LinearConnector', in_channels=4,
                                         out_channels=4), name='logits')]
    assert student == dict(width_mult=0.5) and knobs == {}


def test_dict_choices_get_readable_labels():
    assert label_of(dict(type='pow', p=4)) == 'pow(p=4)'
    space = SearchSpace.from_config(dict(terms=[dict(
        student='s', teacher='t', transform_slots=[['no', dict(type='pow', p=4)]],
        distance='l2')], cfg={'optim_wrapper.optimizer.lr': [0.05, 0.1]}))
    assert space.decisions[0].labels == ['no', 'pow(p=4)']
    terms, _, knobs = space.materialize({'kd0.transform0': 'pow(p=4)', 'kd0.distance': 'l2',
                                         'cfg.optim_wrapper.optimizer.lr': 0.1})
    assert terms[0]['transforms'] == [dict(type='pow', p=4)]
    assert knobs == {'optim_wrapper.optimizer.lr': 0.1}


def test_space_errors_name_the_valid_keys():
    with pytest.raises(KeyError, match=r"terms\[0\] has unknown keys \['wieght'\] \(did you "
                       r"mean 'weight'\?\); valid: student, teacher"):
        SearchSpace.from_config(dict(terms=[dict(student='s', teacher='t', distance='kl',
                                                 wieght=[1.0])]))
    with pytest.raises(KeyError, match="needs the key 'distance'"):
        SearchSpace.from_config(dict(terms=[dict(student='s', teacher='t')]))
    with pytest.raises(KeyError, match='unknown keys'):
        search_settings(dict(space=dict(terms=[]), n_trail=3))


def test_searchers_are_registered_and_built():
    SEARCHERS.import_from_location()
    assert {'random', 'grid', 'mcts', 'nsga2', 'tpe'} <= set(SEARCHERS.module_dict)
    space = logit_space()
    mcts = build_searcher(dict(type='mcts', exploration=0.3), seed=1)
    assert mcts.sampler(space).exploration == 0.3
    nsga2 = build_searcher(dict(type='nsga2', param_budget=1000))
    assert nsga2.directions('maximize') == ['maximize', 'minimize']
    assert isinstance(nsga2.sampler(space), optuna.samplers.NSGAIISampler)
    trial = optuna.trial.create_trial(value=None, state=optuna.trial.TrialState.RUNNING,
                                      user_attrs=dict(param_count=1500))
    assert nsga2.violation(trial.user_attrs) == 500.0 and not nsga2.feasible(trial)
    tpe = build_searcher(dict(type='tpe', n_startup_trials=4), seed=2).sampler(space)
    assert isinstance(tpe, optuna.samplers.TPESampler)
    assert tpe._n_startup_trials == 4 and tpe._multivariate
    with pytest.raises(KeyError, match='unknown searcher'):
        build_searcher('bayes')


def test_proxy_settings_shorten_the_schedule():
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(type='X')),
        train_cfg=dict(by_epoch=True, max_epochs=10),
        param_scheduler=[dict(type='CosineAnnealingLR', T_max=10, by_epoch=True),
                         dict(type='LinearLR', end=2, by_epoch=True)]))
    apply_proxy(cfg, dict(train_indices=100, max_epochs=2,
                          cfg_options={'train_dataloader.batch_size': 8}))
    assert cfg.train_dataloader.dataset.indices == 100
    assert cfg.train_dataloader.batch_size == 8
    assert cfg.train_cfg.max_epochs == 2
    assert cfg.param_scheduler[0].T_max == 2 and cfg.param_scheduler[1].end == 2
