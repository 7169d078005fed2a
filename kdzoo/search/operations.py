"""Per-operation sampling probabilities of successive halving (UniADS' loss suppression).

A candidate's *operations* are its transform names, distance, weight and tau values (and,
when demoted, student and config knobs). Every suppressed candidate multiplies the sampling
weight of each operation it used by ``suppression_factor`` (every eliminated one by
``poor_factor``), for all candidates sampled later. :class:`OperationSampler` draws whole,
valid distillers with these weights, rebuilt from the stored trials at every sample.
The rung roles of trials and the study records of successive halving are named here too.
"""
import math
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from kdzoo.utils import check_keys
from .samplers import PathSampler
from .space import Decision, SearchSpace
from .trials import counts_as_visit, enqueued_params, trial_params, trial_rng

#: Trial user attributes of a rung role: bracket, rung, budget (epochs), candidate.
ROLE_KEYS = ('sh_bracket', 'sh_rung', 'sh_budget', 'sh_candidate')
#: Study user attributes that record successive halving's state.
SCHEDULE_ATTR = 'sh_schedule'
ELIMINATED_ATTR = 'sh_eliminated'
PROBABILITIES_ATTR = 'sh_probabilities'
#: Kinds of decisions whose choices count as operations (see :func:`decision_kind`).
OPERATION_KINDS = ('transform', 'distance', 'weight', 'tau', 'student', 'cfg')


def role_of(trial: FrozenTrial) -> Optional[Dict[str, int]]:
    """The rung role of a trial (``None`` until all of it is stored: another worker may be
    writing it one attribute at a time)."""
    attrs = trial.user_attrs
    if any(k not in attrs for k in ROLE_KEYS):
        return None
    return {k: int(attrs[k]) for k in ROLE_KEYS}


def is_suppressed(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and 'suppressed' in trial.user_attrs


def decision_kind(decision: Decision) -> str:
    """``'transform'``, ``'distance'``, ``'weight'``, ``'tau'``, ``'student'`` or ``'cfg'``."""
    if decision.kind in ('transform', 'distance'):
        return decision.kind
    if decision.target[0] == 'term':
        return decision.target[2]
    return decision.target[0]


def operation_key(decision: Decision, label: Any) -> str:
    """The operation a choice stands for. A transform is one operation in all slots of its
    term (``'kd0.transform:tanh'``); other choices are per decision (``'kd0.tau:4.0'``)."""
    if decision.kind == 'transform':
        return f'{decision.name.rsplit(".", 1)[0]}.transform:{label}'
    return f'{decision.name}:{label}'


def prior_weights(space: SearchSpace,
                  probabilities: Optional[Dict[str, Any]] = None) -> Dict[str, List[float]]:
    """Initial sampling weights per decision: uniform, or ``probabilities[name]`` as a list
    (one weight per choice, in order) or a dict ``{choice label: weight}`` (missing choices
    weigh 1)."""
    probabilities = dict(probabilities or {})
    check_keys(probabilities, space.names, 'successive halving: probabilities')
    out = {}
    for d in space.decisions:
        weights = [1.0] * len(d.labels)
        spec = probabilities.get(d.name)
        if isinstance(spec, (list, tuple)):
            if len(spec) != len(d.labels):
                raise ValueError(f'successive halving: probabilities[{d.name!r}] has '
                                 f'{len(spec)} values for the {len(d.labels)} choices '
                                 f'{d.labels}')
            weights = [float(w) for w in spec]
        elif isinstance(spec, dict):
            for key, value in spec.items():
                matches = [i for i, label in enumerate(d.labels)
                           if label == key or str(label) == str(key)]
                if not matches:
                    raise KeyError(f'successive halving: probabilities[{d.name!r}] names '
                                   f'{key!r}, not a choice of {d.labels}')
                weights[matches[0]] = float(value)
        elif spec is not None:
            raise TypeError(f'successive halving: probabilities[{d.name!r}] must be a list '
                            f'or a dict, got {spec!r}')
        if any(w < 0 or not math.isfinite(w) for w in weights) or sum(weights) <= 0:
            raise ValueError(f'successive halving: probabilities[{d.name!r}] = {weights} must '
                             f'be finite, >= 0, and not all 0')
        out[d.name] = weights
    return out


def operation_weights(space: SearchSpace, trials: Sequence[FrozenTrial],
                      priors: Dict[str, List[float]], suppression_factor: float = 0.5,
                      poor_factor: float = 1.0, eliminated: Sequence[int] = (),
                      demote: Sequence[str] = ('transform', 'distance', 'weight', 'tau')
                      ) -> Dict[str, List[float]]:
    """Sampling weights per decision: the prior x ``suppression_factor`` per suppressed
    candidate that used the operation x ``poor_factor`` per eliminated one. The identity
    transform ``'no'`` is not an operation and keeps its weight."""
    by_candidate = {}
    for t in trials:
        role = role_of(t)
        if role is not None and t.params:
            by_candidate.setdefault(role['sh_candidate'], t.params)
    suppressed, poor = Counter(), Counter()
    demote = set(demote)

    def count(params, counter):
        for d in space.decisions:
            if d.name in params and decision_kind(d) in demote and params[d.name] != 'no':
                counter[operation_key(d, params[d.name])] += 1

    for t in trials:
        if is_suppressed(t) and t.params:
            count(t.params, suppressed)
    for candidate in set(eliminated):
        if candidate in by_candidate:
            count(by_candidate[candidate], poor)
    out = {}
    for d in space.decisions:
        out[d.name] = [w * suppression_factor ** suppressed[operation_key(d, label)]
                       * poor_factor ** poor[operation_key(d, label)]
                       for w, label in zip(priors[d.name], d.labels)]
    return out


def normalised(weights: Dict[str, List[float]], space: SearchSpace) -> Dict[str, Dict]:
    """``{decision: {str(label): probability}}`` (over all choices of the decision)."""
    out = {}
    for d in space.decisions:
        total = sum(weights[d.name]) or 1.0
        out[d.name] = {str(label): round(w / total, 6)
                       for label, w in zip(d.labels, weights[d.name])}
    return out


def sample_path(space: SearchSpace, weights: Dict[str, List[float]], rng,
                fixed: Optional[Dict[str, Any]] = None, avoid=(),
                max_draws: int = 100) -> Tuple[int, ...]:
    """Choice indices drawn decision by decision with ``weights``, among the choices that
    keep a valid distiller; ``fixed`` (enqueued) parameters are respected. Draws again (up
    to ``max_draws`` times) while the path is in ``avoid``."""
    fixed = fixed or {}
    path: Tuple[int, ...] = ()
    for _ in range(max_draws):
        state, chosen = None, []
        for depth, d in enumerate(space.decisions):
            options = space.options(depth, state, fixed)
            if not options:  # an invalid fixed prefix: the loop prunes the result
                options = [(i, d.step(state, i)) for i in range(len(d.labels))]
            w = [weights[d.name][i] for i, _ in options]
            if sum(w) <= 0:
                w = [1.0] * len(options)
            index, state = rng.choices(options, weights=w)[0]
            chosen.append(index)
        path = tuple(chosen)
        if path not in avoid or all(d.name in fixed for d in space.decisions):
            return path
    return path


class OperationSampler(PathSampler):
    """Samples whole distillers with per-operation probabilities (``weights_fn(study)``,
    rebuilt from the stored trials at every sample), valid ones only, avoiding the
    parameters of earlier trials when it can."""

    def __init__(self, space: SearchSpace, weights_fn: Callable[[Study], Dict],
                 seed: Optional[int] = None, max_draws: int = 100):
        super().__init__(space, seed)
        self.weights_fn = weights_fn
        self.max_draws = max_draws

    def choose_path(self, study: Study, trial: FrozenTrial) -> Tuple[int, ...]:
        fixed = enqueued_params(trial)
        avoid = set()
        if not all(d.name in fixed for d in self.space.decisions):
            avoid = {self.space.path_of(trial_params(t))
                     for t in study.get_trials(deepcopy=False)
                     if counts_as_visit(t) and t.number != trial.number}
        return sample_path(self.space, self.weights_fn(study),
                           trial_rng(self.seed, trial.number), fixed, avoid, self.max_draws)
