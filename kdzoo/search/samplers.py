"""Optuna samplers of kdzoo's search: Auto-KD's Monte Carlo tree search, and per-trial
seeding for Optuna's own samplers.

MCTS (:class:`MCTSSampler`) walks the ordered decisions of a :class:`SearchSpace`
(transform slots -> distance -> weight -> tau [-> student knobs]); each level of the tree is
one decision. Its statistics are not kept in memory: they are rebuilt from the study's
stored trials every time a trial is sampled (:func:`build_tree`), so a search resumes from
its storage and many workers share one tree. Per trial:

- each trial with a full set of parameters adds a visit to every node on its path;
  COMPLETE trials add their reward, RUNNING / WAITING trials and failed trials add zero
  (a running trial is a "virtual loss" that steers other workers elsewhere); PRUNED
  trials (never trained) and interrupted trials (their retry stands for them) are skipped;
- selection goes down from the root: among the valid children (the space only offers
  choices with a valid completion) that are not exhausted, an unvisited child is taken
  first (uniformly at random: expansion + random simulation), else the child maximising
  the UCB score ``R_i / N_i + C * sqrt(2 ln N_parent / N_i)``.

With ``rave_k > 0`` the tree also shares evidence between its branches (RAVE, Gelly &
Silver, ICML 2007): the all-moves-as-first statistics of a choice (``R~``, ``N~``: every
visited trial that made this choice for this decision, whatever its path) blend into the
child's value, ``(1 - b) R_i / N_i + b R~_i / N~_i`` with ``b = sqrt(k / (3 N_i + k))``, and
rank the unvisited children (highest ``R~ / N~ + C sqrt(2 ln N~_decision / N~)`` first, a
choice never tried anywhere before all others) instead of a uniform draw. In a deep tree
with few trials most nodes are unvisited; RAVE lets the first trials tell e.g. which
temperature works before every branch has tried both.

The reward of a COMPLETE trial is its objective value normalised to [0, 1] (min-max over
the completed trials, or over a given ``reward_range``; flipped for ``minimize``), or with
``reward='autokd'`` Auto-KD's ``1 - (CE + (1 - CKA))`` from the trial's user attributes
``ce`` and ``cka`` (or ``autokd_reward``), min-max normalised the same way.
"""
import math
import random
import warnings
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from .space import SearchSpace
from .trials import counts_as_visit, enqueued_params, trial_params, trial_rng

REWARDS = ('metric', 'autokd')


def ucb_score(total_reward: float, visits: int, parent_visits: int,
              exploration: float) -> float:
    """``R / N + C * sqrt(2 ln N_parent / N)``; ``inf`` for an unvisited node."""
    if visits <= 0:
        return math.inf
    return (total_reward / visits
            + exploration * math.sqrt(2.0 * math.log(max(parent_visits, 1)) / visits))


class Node:
    """A tree node: visits N, total reward R, children by choice index, distinct leaves."""

    __slots__ = ('visits', 'reward', 'children', 'leaves', 'amaf')

    def __init__(self):
        self.visits = 0
        self.reward = 0.0
        self.children: Dict[int, 'Node'] = {}
        self.leaves = set()
        #: on the root only: ``{(depth, choice index): [visits, reward]}`` over all trials
        self.amaf: Dict[Tuple[int, int], list] = {}

    @property
    def mean(self) -> float:
        return self.reward / self.visits if self.visits else 0.0

    def child(self, index: int) -> Optional['Node']:
        return self.children.get(index)


def raw_reward(trial: FrozenTrial, reward: str = 'metric') -> Optional[float]:
    """The un-normalised reward of a COMPLETE trial (``None`` when not available)."""
    if reward == 'autokd':
        attrs = trial.user_attrs
        if 'autokd_reward' in attrs:
            return float(attrs['autokd_reward'])
        if 'ce' in attrs and 'cka' in attrs:
            return 1.0 - (float(attrs['ce']) + (1.0 - float(attrs['cka'])))
        return None
    return trial.values[0] if trial.values else None


def normalised_rewards(trials: Sequence[FrozenTrial], direction: StudyDirection,
                       reward: str = 'metric',
                       reward_range: Optional[Sequence[float]] = None) -> Dict[int, float]:
    """Trial number -> reward in [0, 1] for the COMPLETE trials; others get 0."""
    if reward not in REWARDS:
        raise ValueError(f'reward={reward!r}; valid: {REWARDS}')
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    raw = {t.number: raw_reward(t, reward) for t in complete}
    if reward == 'autokd' and any(v is None for v in raw.values()):
        warnings.warn('reward="autokd" needs the user attributes "ce" and "cka" (or '
                      '"autokd_reward") on every completed trial; using the metric')
        return normalised_rewards(trials, direction, 'metric', reward_range)
    flip = reward == 'metric' and direction == StudyDirection.MINIMIZE
    values = [v for v in raw.values() if v is not None and math.isfinite(v)]
    if reward_range is not None:
        lo, hi = map(float, reward_range)
    elif values:
        lo, hi = min(values), max(values)
    else:
        lo = hi = 0.0
    out = {}
    for t in trials:
        v = raw.get(t.number)
        if v is None or not math.isfinite(v):
            out[t.number] = 0.0
            continue
        r = 1.0 if hi <= lo else (v - lo) / (hi - lo)
        r = min(max(r, 0.0), 1.0)
        out[t.number] = 1.0 - r if flip and hi > lo else r
    return out


def build_tree(space: SearchSpace, trials: Iterable[FrozenTrial],
               direction: StudyDirection = StudyDirection.MAXIMIZE, reward: str = 'metric',
               reward_range: Optional[Sequence[float]] = None) -> Node:
    """The MCTS statistics of ``trials`` (see the module doc)."""
    trials = [t for t in trials if counts_as_visit(t)]
    rewards = normalised_rewards(trials, direction, reward, reward_range)
    root = Node()
    for trial in trials:
        path = space.path_of(trial_params(trial))
        if path is None:
            continue
        r = rewards.get(trial.number, 0.0) if trial.state == TrialState.COMPLETE else 0.0
        node = root
        for index in (None,) + path:
            if index is not None:
                node = node.children.setdefault(index, Node())
            node.visits += 1
            node.reward += r
            node.leaves.add(path)
        for depth, index in enumerate(path):
            stats = root.amaf.setdefault((depth, index), [0, 0.0])
            stats[0] += 1
            stats[1] += r
    return root


def rave_beta(visits: int, k: float) -> float:
    """Weight of the all-moves-as-first value: ``sqrt(k / (3 N + k))`` (Gelly & Silver's
    schedule: 1 for an unvisited child, 1/2 at ``N = k``, 0 as ``N`` grows)."""
    return math.sqrt(k / (3.0 * visits + k)) if k > 0 else 0.0


def rave_score(child: Optional[Node], amaf: Sequence[float], parent_visits: int,
               exploration: float, k: float) -> float:
    """The RAVE-blended UCB score of a visited child (see the module doc)."""
    n, total = (child.visits, child.reward) if child is not None else (0, 0.0)
    n_amaf, r_amaf = amaf
    beta = rave_beta(n, k)
    value = (1.0 - beta) * (total / n if n else 0.0) + beta * (r_amaf / n_amaf if n_amaf
                                                                else 0.0)
    return value + exploration * math.sqrt(2.0 * math.log(max(parent_visits, 1)) / n)


def select_path(space: SearchSpace, root: Node, rng: random.Random, exploration: float = 0.5,
                allow_repeats: bool = False,
                fixed: Optional[Dict[str, Any]] = None, rave_k: float = 0.0) -> Tuple[int, ...]:
    """Choice indices from the root to a leaf (selection, expansion, random simulation;
    with ``rave_k > 0`` RAVE-guided, see the module doc)."""
    fixed = fixed or {}
    node: Optional[Node] = root
    state, path = None, []
    for depth, decision in enumerate(space.decisions):
        options = space.options(depth, state, fixed)
        if not options:  # cannot happen for a valid prefix
            raise RuntimeError(f'MCTS: no valid choice for {decision.name} after {path}')
        children = {i: (node.child(i) if node is not None else None) for i, _ in options}
        if not allow_repeats:
            open_options = [(i, s) for i, s in options
                            if children[i] is None
                            or len(children[i].leaves) < space.count(depth + 1, s)]
            options = open_options or options
        unvisited = [(i, s) for i, s in options if children[i] is None or not children[i].visits]
        amaf = {i: root.amaf.get((depth, i), (0, 0.0)) for i, _ in options}
        if unvisited and rave_k > 0:
            # expansion in the order of the choices' evidence from the rest of the tree
            decision_visits = sum(root.amaf.get((depth, i), (0, 0.0))[0]
                                  for i in range(len(decision.labels)))
            scores = [(ucb_score(amaf[i][1], amaf[i][0], decision_visits, exploration), i, s)
                      for i, s in unvisited]
        elif unvisited:
            scores = [(0.0, i, s) for i, s in unvisited]
        else:
            parent_visits = node.visits if node is not None else 0
            if rave_k > 0:
                scores = [(rave_score(children[i], amaf[i], parent_visits, exploration,
                                      rave_k), i, s) for i, s in options]
            else:
                scores = [(ucb_score(children[i].reward, children[i].visits, parent_visits,
                                     exploration), i, s) for i, s in options]
        best = max(score for score, _, _ in scores)
        index, state = rng.choice([(i, s) for score, i, s in scores if score >= best])
        path.append(index)
        node = children[index]
    return tuple(path)


class PathSampler(BaseSampler):
    """An Optuna sampler that chooses a whole distiller at once: all decisions of the space
    form its relative search space, so a trial's decisions are consistent. Subclasses
    implement :meth:`choose_path` (choice indices, one per decision); parameters outside
    the space fall back to seeded random draws."""

    def __init__(self, space: SearchSpace, seed: Optional[int] = None):
        self.space = space
        self.seed = seed
        self._fallback = RandomSampler(seed=seed)

    def choose_path(self, study: Study, trial: FrozenTrial) -> Tuple[int, ...]:
        raise NotImplementedError  # abstract

    def infer_relative_search_space(self, study: Study,
                                    trial: FrozenTrial) -> Dict[str, BaseDistribution]:
        return self.space.distributions()

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: Dict[str, BaseDistribution]) -> Dict[str, Any]:
        if not search_space:
            return {}
        labels = self.space.labels_of(self.choose_path(study, trial))
        return {k: v for k, v in labels.items() if k in search_space}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)


class MCTSSampler(PathSampler):
    """Auto-KD's Monte Carlo tree search over a :class:`SearchSpace`, as an Optuna sampler.

    The whole path is chosen at once in :meth:`sample_relative` (all decisions of the space
    form its relative search space), so the decisions of a trial are consistent and always
    form a valid distiller. Enqueued (fixed) parameters are respected on the way down.

    Args:
        space: the search space.
        exploration: C in the UCB score.
        reward: ``'metric'`` or ``'autokd'`` (see the module doc).
        reward_range: fixed ``(low, high)`` of the metric for the normalisation; default
            min-max over the completed trials.
        allow_repeats: allow a leaf that was already tried (default: exhausted subtrees are
            skipped until the whole space has been tried).
        rave_k: RAVE's equivalence parameter (the visits at which a node's own mean and
            the all-moves-as-first mean weigh the same); 0 turns RAVE off.
        seed: seed of the tie-breaking / expansion randomness (combined with the trial
            number).
    """

    def __init__(self, space: SearchSpace, exploration: float = 0.5, reward: str = 'metric',
                 reward_range: Optional[Sequence[float]] = None, allow_repeats: bool = False,
                 rave_k: float = 0.0, seed: Optional[int] = None):
        if reward not in REWARDS:
            raise ValueError(f'MCTS reward={reward!r}; valid: {REWARDS}')
        if rave_k < 0:
            raise ValueError(f'MCTS rave_k={rave_k!r}: must be >= 0 (0 turns RAVE off)')
        super().__init__(space, seed)
        self.rave_k = float(rave_k)
        self.exploration = float(exploration)
        self.reward = reward
        self.reward_range = reward_range
        self.allow_repeats = allow_repeats

    def tree(self, study: Study) -> Node:
        """The tree statistics rebuilt from ``study``'s trials."""
        return build_tree(self.space, study.get_trials(deepcopy=False), study.directions[0],
                          self.reward, self.reward_range)

    def choose_path(self, study: Study, trial: FrozenTrial) -> Tuple[int, ...]:
        return select_path(self.space, self.tree(study), trial_rng(self.seed, trial.number),
                           self.exploration, self.allow_repeats,
                           enqueued_params(trial), self.rave_k)


def _reseed(sampler: BaseSampler, seed: Optional[int], number: int) -> None:
    """Reseed ``sampler``'s random states from (seed, trial number)."""
    if seed is None:
        return
    value = trial_rng(seed, number).randrange(2**32)
    for obj in (sampler, getattr(sampler, '_random_sampler', None)):
        state = getattr(obj, '_rng', None)
        if state is not None and hasattr(state, 'rng'):
            state.rng.seed(value)


class SeededRandomSampler(RandomSampler):
    """Optuna's RandomSampler whose draws depend on (seed, trial number), not on the
    process: two workers with one seed do not repeat each other, and a resumed search
    draws what an uninterrupted one would have."""

    def __init__(self, seed: Optional[int] = None):
        super().__init__(seed=seed)
        self._seed = seed

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        _reseed(self, self._seed, trial.number)
        super().before_trial(study, trial)


class SeededTPESampler(TPESampler):
    """Optuna's TPESampler (multivariate by default) with per-trial seeding (see
    :class:`SeededRandomSampler`): the generic Bayesian-optimisation baseline."""

    def __init__(self, seed: Optional[int] = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self._seed = seed

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        _reseed(self, self._seed, trial.number)
        super().before_trial(study, trial)


def stratified_point(space: SearchSpace, seed: Optional[int], index: int) -> Dict[str, Any]:
    """Point ``index`` of a stratified (Latin-hypercube-like) design over ``space``.

    Each decision runs through its labels in blocks: every block of ``k`` consecutive points
    holds each of the decision's ``k`` labels exactly once, in a per-block random order
    (seeded by the search seed, the decision and the block). The decisions are shuffled
    independently, so the first points cover every choice of every decision as evenly as
    possible instead of leaving it to chance; the design depends only on (seed, index), so
    workers and resumed searches agree on it.
    """
    point = {}
    for d in space.decisions:
        k = len(d.labels)
        block, offset = divmod(index, k)
        order = list(range(k))
        random.Random(f'kdzoo-design-{seed}-{d.name}-{block}').shuffle(order)
        point[d.name] = d.labels[order[offset]]
    return point


class SeededNSGAIISampler(NSGAIISampler):
    """Optuna's NSGAIISampler with per-trial seeding (see :class:`SeededRandomSampler`) and
    an optional stratified first generation.

    Args:
        space: with it, the first generation (Optuna draws it uniformly at random) follows
            :func:`stratified_point` of the trial number instead: a space-filling initial
            population, the usual start of a GA on a small budget.
        seed: the search seed.
        **kwargs: :class:`optuna.samplers.NSGAIISampler`'s arguments.
    """

    def __init__(self, *, seed: Optional[int] = None, space: Optional[SearchSpace] = None,
                 **kwargs):
        super().__init__(seed=seed, **kwargs)
        self._seed = seed
        self._space = space

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        _reseed(self, self._seed, trial.number)
        super().before_trial(study, trial)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if (self._space is not None and param_name in self._space.names
                and self.get_trial_generation(study, trial) == 0):
            label = stratified_point(self._space, self._seed, trial.number)[param_name]
            if label in param_distribution.choices:
                return label
        return super().sample_independent(study, trial, param_name, param_distribution)


__all__ = [
    'PathSampler', 'MCTSSampler', 'SeededRandomSampler', 'SeededNSGAIISampler',
    'SeededTPESampler', 'Node',
    'build_tree', 'select_path', 'ucb_score', 'normalised_rewards', 'stratified_point'
]
