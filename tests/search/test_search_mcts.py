"""MCTS (UCB, tree rebuilt from stored trials, selection), the search loop on toy
objectives (no training), and the recovery of trials whose worker died."""
import math
import random
import subprocess
import sys

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from kdzoo.search import (SearchLoop, SearchSpace, TrialBook, TrialResult, build_searcher,
                          build_tree, open_storage, select_path, ucb_score)
from kdzoo.search.samplers import MCTSSampler, normalised_rewards, rave_beta, rave_score
from kdzoo.search.trials import INTERRUPTED_KEY, WORKER_KEY, worker_identity
from search_helpers import new_book

optuna.logging.set_verbosity(optuna.logging.WARNING)


def small_space(weights=(1.0, 5.0, 16.0)):
    return SearchSpace.from_config(dict(terms=[dict(
        student='s', teacher='t', distance=['kl', 'l2'], weight=list(weights))]))


def frozen(space, labels, state=TrialState.COMPLETE, value=None, number=0, **system):
    params = dict(zip(space.names, labels))
    dists = {k: v for k, v in space.distributions().items() if k in params}
    trial = create_trial(params=params, distributions=dists, value=value, state=state,
                         system_attrs=system)
    trial.number = number
    return trial


def test_ucb_formula():
    assert ucb_score(3.0, 4, 10, 0.5) == pytest.approx(0.75 + 0.5 * math.sqrt(
        2 * math.log(10) / 4))
    assert ucb_score(3.0, 4, 10, 0.0) == 0.75
    assert ucb_score(0.0, 0, 10, 1.0) == math.inf


def test_tree_is_rebuilt_from_frozen_trials():
    space = small_space()
    trials = [
        frozen(space, ['kl', 1.0], value=80.0, number=0),
        frozen(space, ['kl', 5.0], value=60.0, number=1),
        frozen(space, ['l2', 1.0], value=70.0, number=2),
        frozen(space, ['l2', 5.0], TrialState.RUNNING, number=3),     # visit, reward 0
        frozen(space, ['l2', 16.0], TrialState.FAIL, number=4),       # visit, reward 0
        frozen(space, ['kl', 16.0], TrialState.PRUNED, number=5),     # never trained
        frozen(space, ['kl', 16.0], TrialState.FAIL, number=6,        # retried elsewhere
               **{INTERRUPTED_KEY: True}),
    ]
    root = build_tree(space, trials, StudyDirection.MAXIMIZE)
    assert root.visits == 5 and root.reward == pytest.approx(1.5)
    kl, l2 = root.children[0], root.children[1]
    assert (kl.visits, kl.reward) == (2, pytest.approx(1.0))       # rewards 1.0 and 0.0
    assert (l2.visits, l2.reward) == (3, pytest.approx(0.5))       # 0.5 + running + failed
    assert set(kl.children) == {0, 1} and kl.children[0].mean == 1.0
    assert l2.children[1].visits == 1 and l2.children[1].reward == 0.0
    assert len(l2.leaves) == 3
    # minimising flips the normalised rewards
    root = build_tree(space, trials, StudyDirection.MINIMIZE)
    assert root.children[0].reward == pytest.approx(1.0) and root.children[1].mean == 0.5 / 3


def test_selection_unvisited_first_then_ucb_and_skips_exhausted_subtrees():
    space = small_space()
    rng = random.Random(0)
    # only 'kl' was visited: 'l2' is unvisited and comes first, whatever C
    root = build_tree(space, [frozen(space, ['kl', 1.0], value=1.0)])
    assert select_path(space, root, rng, exploration=0.0)[0] == 1
    trials = [frozen(space, ['kl', 1.0], value=90.0, number=0),
              frozen(space, ['kl', 5.0], value=80.0, number=1),
              frozen(space, ['l2', 1.0], value=10.0, number=2)]
    root = build_tree(space, trials)
    # C = 0: the best mean (kl: (1 + 0.875) / 2 vs l2: 0); its unvisited weight 16 next
    assert select_path(space, root, rng, exploration=0.0) == (0, 2)
    # a large C favours the less visited child
    assert select_path(space, root, rng, exploration=100.0)[0] == 1
    # once kl's three leaves were all tried, its subtree is skipped
    root = build_tree(space, trials + [frozen(space, ['kl', 16.0], value=85.0, number=3)])
    assert select_path(space, root, rng, exploration=0.0)[0] == 1
    # fixed (enqueued) parameters are respected
    assert select_path(space, root, rng, 0.0, fixed={'kd0.distance': 'kl'})[0] == 0


def test_rave_statistics_and_formulas():
    space = small_space()
    trials = [frozen(space, ['kl', 1.0], value=90.0, number=0),
              frozen(space, ['l2', 5.0], value=10.0, number=1),
              frozen(space, ['l2', 1.0], value=70.0, number=2)]
    root = build_tree(space, trials)
    # all-moves-as-first: per (decision depth, choice) over every trial, whatever its path
    assert root.amaf[(0, 0)] == [1, pytest.approx(1.0)]
    assert root.amaf[(0, 1)] == [2, pytest.approx(0.75)]
    assert root.amaf[(1, 0)] == [2, pytest.approx(1.75)]       # weight 1 under kl and l2
    assert root.amaf[(1, 1)] == [1, pytest.approx(0.0)]
    assert (1, 2) not in root.amaf
    # Gelly & Silver's schedule sqrt(k / (3N + k))
    assert rave_beta(0, 10.0) == 1.0 and rave_beta(5, 5.0) == pytest.approx(0.5)
    assert rave_beta(4, 0.0) == 0.0
    child = root.children[1]                                   # l2: N 2, R 0.75
    beta = math.sqrt(3.0 / (3 * 2 + 3.0))
    want = (1 - beta) * 0.75 / 2 + beta * 1.75 / 2 + 0.5 * math.sqrt(2 * math.log(3) / 2)
    assert rave_score(child, [2, 1.75], 3, 0.5, 3.0) == pytest.approx(want)


def test_rave_expands_the_choice_that_paid_elsewhere():
    space = small_space()
    trials = [frozen(space, ['kl', 1.0], value=90.0, number=0),
              frozen(space, ['kl', 5.0], value=10.0, number=1),
              frozen(space, ['kl', 16.0], value=50.0, number=2),
              frozen(space, ['l2', 16.0], value=60.0, number=3)]
    root = build_tree(space, trials)
    # under l2, weights 1 and 5 are unvisited: plain MCTS draws one at random, RAVE takes
    # weight 1, the one that paid under kl (C = 0: pure evidence)
    picks = {select_path(space, root, random.Random(seed), 0.0, fixed={'kd0.distance': 'l2'})
             for seed in range(20)}
    assert picks == {(1, 0), (1, 1)}
    for seed in range(20):
        assert select_path(space, root, random.Random(seed), 0.0,
                           fixed={'kd0.distance': 'l2'}, rave_k=10.0) == (1, 0)
    # a choice never tried anywhere comes before all tried ones, whatever their evidence
    root = build_tree(space, trials[:1] + trials[3:])
    assert select_path(space, root, random.Random(0), 0.0, fixed={'kd0.distance': 'l2'},
                       rave_k=10.0) == (1, 1)
    with pytest.raises(ValueError, match='rave_k'):
        MCTSSampler(space, rave_k=-1)


def test_autokd_reward_from_user_attrs():
    space = small_space()
    a = frozen(space, ['kl', 1.0], value=50.0, number=0)
    b = frozen(space, ['l2', 1.0], value=90.0, number=1)
    a.user_attrs.update(ce=0.2, cka=0.9)   # R = 1 - (0.2 + 0.1) = 0.7
    b.user_attrs.update(ce=1.0, cka=0.5)   # R = -0.5
    assert normalised_rewards([a, b], StudyDirection.MAXIMIZE, 'autokd') == {0: 1.0, 1: 0.0}
    assert normalised_rewards([a, b], StudyDirection.MAXIMIZE, 'metric') == {0: 0.0, 1: 1.0}


def chain_space():
    """A space with invalid chains for rank-2 inputs (satt, flatten, at)."""
    return SearchSpace.from_config(dict(terms=[dict(
        student='s', teacher='t',
        transform_slots=[['no', 'softmax_C', 'norm_C', 'standardize', 'satt'],
                         ['no', 'tanh', 'flatten']],
        distance=['kl', 'l2', 'cosine', 'pearson', 'at'], weight=[0.5, 1.0, 5.0],
        tau=[1.0, 4.0])], student=dict(width_mult=[0.5, 1.0])))


def run_loop(space, searcher_cfg, objective, n_trials, seed=0, storage=None, name=None):
    searcher = build_searcher(searcher_cfg, seed)
    book = new_book(searcher, space, storage, name)
    calls = []

    def evaluate(job, heartbeat):
        calls.append(job.params)
        return TrialResult(value=objective(job.params))

    SearchLoop(book, space, searcher, evaluate, n_trials, log=None).run()
    return book.study, calls


def test_mcts_proposes_only_valid_and_new_distillers():
    space = chain_space()
    study, calls = run_loop(space, dict(type='mcts'), lambda p: random.random(), 40)
    assert len(calls) == 40 and all(space.check(p) is None for p in calls)
    assert len({tuple(sorted(p.items())) for p in calls}) == 40
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_random_search_prunes_invalid_chains_without_training():
    space = chain_space()
    study, calls = run_loop(space, 'random', lambda p: 1.0, 20)
    assert len(calls) == 20 and all(space.check(p) is None for p in calls)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and all('invalid chain' in t.user_attrs['pruned_reason']
                          or 'duplicate' in t.user_attrs['pruned_reason'] for t in pruned)


def test_search_stops_when_the_space_is_exhausted():
    space = small_space()
    study, calls = run_loop(space, 'grid', lambda p: 1.0, 50)
    assert len(calls) == len(space) == 6


def toy_objective(space, seed=123):
    """Additive scores per decision; one best choice each (a unique optimum)."""
    rng = random.Random(seed)
    tables, best = {}, {}
    for d in space.decisions:
        tables[d.name] = [rng.uniform(0, 0.6) for _ in d.labels]
        options = [i for i, label in enumerate(d.labels) if label not in ('satt', 'flatten', 'at')]
        i = rng.choice(options)
        tables[d.name][i] = 1.0
        best[d.name] = d.labels[i]

    def objective(params):
        return sum(tables[d.name][d.index(params[d.name])] for d in space.decisions)

    return objective, objective(best)


def test_mcts_finds_the_optimum_earlier_than_random_on_a_toy_objective():
    space = chain_space()
    objective, optimum = toy_objective(space)

    def first_hit(searcher_cfg, seed):
        _, calls = run_loop(space, searcher_cfg, objective, 60, seed=seed)
        hits = [i for i, p in enumerate(calls) if objective(p) == pytest.approx(optimum)]
        return hits[0] if hits else None

    seeds = range(4)
    mcts = [first_hit(dict(type='mcts', exploration=0.3), s) for s in seeds]
    rand = [first_hit('random', s) for s in seeds]
    found = lambda hits: sum(h is not None for h in hits)  # noqa: E731
    mean = lambda hits: sum(60 if h is None else h for h in hits) / len(hits)  # noqa: E731
    assert found(mcts) >= found(rand) and found(mcts) >= 3, (mcts, rand)
    assert mean(mcts) < mean(rand), (mcts, rand)


def test_mcts_resumes_from_the_storage_and_workers_share_the_tree(tmp_path):
    space = chain_space()
    storage = open_storage(None, str(tmp_path))
    run_loop(space, dict(type='mcts'), lambda p: random.random(), 10, storage=storage,
             name='s')
    # a new process (new sampler, same storage) continues the same tree
    study, calls = run_loop(space, dict(type='mcts'), lambda p: random.random(), 20,
                            storage=storage, name='s')
    assert len(calls) == 10 and len(study.trials) == 20
    keys = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(keys) == 20
    assert MCTSSampler(space).tree(study).visits == 20


def test_a_running_trial_is_a_visit_so_other_workers_go_elsewhere():
    """With C = 0 the tree would pick kl's last leaf (weight 16); while another worker
    trains that leaf (RUNNING), kl's subtree is taken and the pick moves to l2."""
    space = small_space()
    done = [frozen(space, ['kl', 1.0], value=90.0, number=0),
            frozen(space, ['kl', 5.0], value=80.0, number=1),
            frozen(space, ['l2', 1.0], value=10.0, number=2)]
    running = frozen(space, ['kl', 16.0], TrialState.RUNNING, number=3)
    assert select_path(space, build_tree(space, done), random.Random(0), 0.0) == (0, 2)
    root = build_tree(space, done + [running])
    assert root.children[0].visits == 3 and root.children[0].reward == pytest.approx(1.875)
    assert select_path(space, root, random.Random(0), 0.0)[0] == 1


def dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_orphaned_trials_are_failed_and_retried_once(tmp_path):
    space = small_space()
    storage = open_storage(str(tmp_path / 's.journal'), str(tmp_path))
    study = optuna.create_study(storage=storage, study_name='s', direction='maximize')
    dists = space.distributions()
    book = TrialBook(study, storage)
    orphan = study.ask(dists)
    storage.set_trial_system_attr(book.trial_id(orphan.number), WORKER_KEY,
                                  dict(worker_identity(), pid=dead_pid(), start=None))
    alive = study.ask(dists)
    book.claim(alive.number)
    assert book.recover_orphans() == [orphan.number]
    assert book.recover_orphans() == []
    trials = study.get_trials()
    assert trials[orphan.number].state == TrialState.FAIL
    assert trials[orphan.number].system_attrs[INTERRUPTED_KEY]
    assert trials[alive.number].state == TrialState.RUNNING
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs['retry_of'] == orphan.number
    assert waiting[0].system_attrs['fixed_params'] == orphan.params


def test_nsga2_tells_accuracy_and_size_with_the_budget_as_a_constraint():
    space = SearchSpace.from_config(dict(
        terms=[dict(student='s', teacher='t', distance=['kl', 'l2'], weight=[1.0, 5.0])],
        student=dict(width_mult=[0.25, 0.5, 1.0])))
    searcher = build_searcher(dict(type='nsga2', population_size=4, param_budget=50))
    book = new_book(searcher, space)
    study = book.study

    def evaluate(job, heartbeat):
        width = job.params['student.width_mult']
        return TrialResult(value=10 * width + (job.params['kd0.distance'] == 'kl'),
                           attrs=dict(param_count=int(100 * width)))

    SearchLoop(book, space, searcher, evaluate, 8, log=None).run()
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 8
    for t in complete:
        assert t.values[1] == t.user_attrs['param_count']
        assert t.system_attrs['constraints:param_budget'] == t.user_attrs['param_count'] - 50
    best = searcher.best_trial(study)
    feasible = [t for t in complete if t.user_attrs['param_count'] <= 50]
    assert best.user_attrs['param_count'] <= 50
    assert best.values[0] == max(t.values[0] for t in feasible)


def test_stratified_design_covers_every_choice_per_block():
    from kdzoo.search.samplers import stratified_point
    space = SearchSpace.from_config(dict(terms=[dict(
        student='s', teacher='t', transform_slots=[['no', 'tanh', 'bn', 'softmax_C']],
        distance=['kl', 'l2', 'cosine'], weight=[1.0, 5.0], tau=[1.0, 4.0])]))
    points = [stratified_point(space, 7, i) for i in range(12)]
    for d in space.decisions:
        k = len(d.labels)
        for start in range(0, 12 - k + 1, k):     # each block holds every label once
            block = [p[d.name] for p in points[start:start + k]]
            assert sorted(map(str, block)) == sorted(map(str, d.labels))
    assert points == [stratified_point(space, 7, i) for i in range(12)]   # (seed, index)
    assert points != [stratified_point(space, 8, i) for i in range(12)]


def test_nsga2_first_generation_is_stratified_then_evolves():
    space = SearchSpace.from_config(dict(terms=[dict(
        student='s', teacher='t', distance=['kl', 'l2', 'cosine', 'pearson'],
        weight=[1.0, 2.0, 5.0, 10.0], tau=[1.0, 4.0])]))
    from kdzoo.search.samplers import SeededNSGAIISampler, stratified_point
    key = SeededNSGAIISampler._get_generation_key()
    for init in ('stratified', 'random'):
        searcher = build_searcher(dict(type='nsga2', population_size=8,
                                       initial_population=init), seed=3)
        book = new_book(searcher, space)
        study = book.study

        def evaluate(job, heartbeat):
            params = job.params
            return TrialResult(value=params['kd0.weight'] + (params['kd0.tau'] == 1.0),
                               attrs=dict(param_count=1))

        SearchLoop(book, space, searcher, evaluate, 16, log=None).run()
        first = sorted((t for t in study.trials
                        if t.system_attrs.get(key) == 0),
                       key=lambda t: t.number)
        assert len([t for t in first if t.state == TrialState.COMPLETE]) == 8
        if init == 'stratified':
            for t in first:
                assert t.params == stratified_point(space, 3, t.number)
            assert sorted(t.params['kd0.distance'] for t in first[:4]) == \
                ['cosine', 'kl', 'l2', 'pearson']
        later = [t for t in study.trials if t.system_attrs.get(key, 0) > 0]
        assert later, 'no trial of a later generation'
    with pytest.raises(ValueError, match='initial_population'):
        build_searcher(dict(type='nsga2', initial_population='lhs'))
