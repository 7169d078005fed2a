"""UniADS' multi-objective successive halving: Pareto ranking (fronts, crowding distance,
constrained domination), the survivors of a rung on a constructed table, and a whole
search with a fake evaluation."""
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from kdzoo.search import SearchLoop, SearchSpace, build_searcher
from kdzoo.search.pareto import crowding_distance, non_dominated_fronts, pareto_order
from kdzoo.search.protocol import SearchState, TrialResult
from search_helpers import new_book

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = dict(terms=[dict(student='backbone.fc', teacher='backbone.fc', input_rank=2,
                         transform_slots=[['no', 'tanh', 'norm_C']],
                         distance=['kl', 'l2', 'cosine'], weight=[1.0, 2.0], tau=[1.0, 4.0])],
             student=dict(width_mult=[0.5, 1.0]))


def test_fronts_and_crowding_distance_by_hand():
    # minimise both: (1,5) (2,3) (4,1) are non-dominated; (3,4) is dominated by (2,3);
    # (5,5) by all of them
    points = [(1, 5), (3, 4), (2, 3), (5, 5), (4, 1)]
    assert non_dominated_fronts(points) == [[0, 2, 4], [1], [3]]
    # front 0 sorted by objective 0: (1,5) (2,3) (4,1); the middle one's distance is
    # (4-1)/(4-1) + (5-1)/(5-1) = 2, the extremes are infinite
    assert crowding_distance([points[0], points[2], points[4]]) == [float('inf'), 2.0,
                                                                   float('inf')]
    assert pareto_order(points) == [0, 4, 2, 1, 3]
    # constrained: (1,5) violates the budget: every feasible point ranks before it
    assert pareto_order(points, [3.0, 0, 0, 0, 0])[-1] == 0


def _trial(number, acc, params, rung=0, candidate=None, budget=1):
    return create_trial(
        state=TrialState.COMPLETE, values=[acc, params],
        params={'kd0.distance': 'kl'},
        distributions={'kd0.distance': CategoricalDistribution(['kl', 'l2', 'cosine'])},
        user_attrs=dict(sh_bracket=0, sh_rung=rung, sh_budget=budget,
                        sh_candidate=number if candidate is None else candidate,
                        param_count=params))


def test_a_rung_promotes_exactly_the_non_dominated_candidates():
    """8 candidates (accuracy, parameters), of which 4 are non-dominated; with eta 2 those
    4 are promoted and the other 4 eliminated, whatever their accuracy."""
    table = [(90.0, 20000), (89.0, 9000), (85.0, 5000), (70.0, 2000),   # the front
             (88.0, 21000), (84.0, 9500), (60.0, 5000), (69.0, 2500)]   # dominated
    trials = [_trial(i, acc, p) for i, (acc, p) in enumerate(table)]
    for i, t in enumerate(trials):
        t.number = i
    searcher = build_searcher(dict(type='uniads', n_candidates=8, eta=2, min_budget=1,
                                   max_budget=2), seed=0)
    searcher.begin(SearchSpace.from_config(SPACE),
                   SearchState(trials, {}, n_trials=8), max_epochs=2)
    step = searcher.planner.next(SearchState(trials, {}, n_trials=8))
    assert step.kind == 'promote' and step.candidate in {0, 1, 2, 3}
    assert step.eliminated == {4, 5, 6, 7}
    # by the metric alone (plain successive halving) 4 (88 %) would survive and 3 would not
    plain = build_searcher(dict(type='successive_halving', n_candidates=8, eta=2,
                                min_budget=1, max_budget=2), seed=0)
    plain.begin(SearchSpace.from_config(SPACE), SearchState(trials, {}, n_trials=8),
                max_epochs=2)
    assert plain.planner.next(SearchState(trials, {}, n_trials=8)).eliminated == {3, 5, 6, 7}


def test_a_budget_is_a_constraint_or_the_papers_penalty():
    constraint = build_searcher(dict(type='uniads', param_budget=10000), seed=0)
    table = [(90.0, 20000), (89.0, 9000), (85.0, 5000), (70.0, 2000)]
    trials = [_trial(i, a, p) for i, (a, p) in enumerate(table)]
    state = SearchState(trials, {}, n_trials=4)
    assert [t.values[0] for t in constraint.rank(trials, state)][-1] == 90.0  # infeasible
    penalty = build_searcher(dict(type='uniads', param_budget=10000, budget_mode='penalty'))
    assert penalty.values(80.0, dict(param_count=12500)) == [80.0, 2500.0]
    assert constraint.values(80.0, dict(param_count=12500)) == [80.0, 12500.0]
    with pytest.raises(ValueError, match="valid: \\('constraint', 'penalty'\\)"):
        build_searcher(dict(type='uniads', budget_mode='soft'))
    with pytest.raises(ValueError, match='needs param_budget'):
        build_searcher(dict(type='uniads', budget_mode='penalty'))


def test_a_uniads_search_keeps_small_and_accurate_students():
    space = SearchSpace.from_config(SPACE)
    searcher = build_searcher(dict(type='uniads', n_candidates=8, eta=2, min_budget=1,
                                   max_budget=4, population_size=4), seed=0)
    book = new_book(searcher, space)

    def fake(job, heartbeat):
        p = job.params
        width = p['student.width_mult']
        acc = {'kl': 80, 'l2': 70, 'cosine': 75}[p['kd0.distance']] + 10 * width \
            + job.budget
        return TrialResult(value=acc, attrs=dict(param_count=int(10000 * width)))

    SearchLoop(book, space, searcher, fake, n_trials=8, log=None).run()
    study = book.study
    assert len(study.directions) == 2
    by_rung = {}
    for t in study.trials:
        if t.state == TrialState.COMPLETE:
            by_rung.setdefault(t.user_attrs['sh_rung'], []).append(t)
    assert [len(by_rung[r]) for r in sorted(by_rung)] == [8, 4, 2]
    rung0 = by_rung[0]
    points = [(-t.values[0], t.values[1]) for t in rung0]
    survivors = {rung0[i].user_attrs['sh_candidate'] for i in pareto_order(points)[:4]}
    assert {t.user_attrs['sh_candidate'] for t in by_rung[1]} == survivors
    assert all(t.values[1] in (5000, 10000) for t in study.trials if t.values)


@pytest.mark.parametrize('backbone,knob,small,large', [
    (dict(type='TorchvisionModel', name='mobilenet_v2', num_classes=10), 'width_mult', 0.5, 1.0),
    (dict(type='TimmModel', model_name='mobilenetv3_large_100', num_classes=10),
     'depth_multiplier', 0.5, 1.0),
])
def test_timm_and_torchvision_students_have_searchable_width_or_depth(tmp_path, backbone, knob,
                                                                      small, large):
    """``space.student`` knobs reach the constructor of a torchvision / timm student where
    its family has them (torchvision's MobileNetV2 ``width_mult``, timm's MobileNetV3
    ``depth_multiplier``): the candidates differ in parameters, what UniADS trades off."""
    from mmengine.config import Config

    from kdzoo.search import TrialRunner
    space = SearchSpace.from_config(dict(
        terms=[dict(student='backbone', teacher='backbone', input_rank=2,
                    transform_slots=[['no']], distance=['kl'], weight=[1.0], tau=[1.0])],
        student={knob: [small, large]}))
    cfg = Config(dict(model=dict(
        type='Distiller', teacher='resnet8', student_loss_weight=0.0,
        student=dict(type='ImageClassifier', backbone=backbone),
        distill_terms=[dict(student='backbone', teacher='backbone', distance='kl')])))
    runner = TrialRunner(cfg, space, str(tmp_path))
    counts = {}
    for value in (small, large):
        params = {'kd0.transform0': 'no', 'kd0.distance': 'kl', 'kd0.weight': 1.0,
                  'kd0.tau': 1.0, f'student.{knob}': value}
        trial = runner.make_config(params)
        assert trial.model.student.backbone[knob] == value
        counts[value] = runner.student_param_count(trial)
    assert counts[small] < 0.8 * counts[large]
