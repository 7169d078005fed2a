"""The search space: an ordered list of categorical decisions read from ``search.space``.

A config declares term *templates*; each template becomes the decisions

    <term>.transform0 .. <term>.transformK-1 -> <term>.distance -> <term>.weight -> <term>.tau

followed by the student knobs (``student.width_mult``, ...) and generic config knobs
(``cfg.<dotted.key>``). Every decision is an Optuna ``CategoricalDistribution`` whose
choices are *labels* (str / int / float / bool); a label maps back to its config value
(a dict choice such as ``dict(type='pow', p=4)`` gets the label ``'pow(p=4)'``).

Validity: a transform chain and its distance must accept the term's ``input_rank``
(:func:`kdzoo.kd.base.check_chain`). The space tracks the tensor rank along the decisions,
so it can enumerate the valid choices of each decision given the earlier ones
(:meth:`SearchSpace.valid_choices`), count the valid completions of a prefix
(:meth:`SearchSpace.count`) and check a full assignment (:meth:`SearchSpace.check`).
Samplers that walk the decisions in order (MCTS) only ever produce valid distillers;
samplers that draw each decision independently (random, NSGA-II) may produce invalid
ones, which the search loop rejects before training.
"""
import copy
import json
from functools import lru_cache
from typing import Any, Dict, List, Optional, Sequence, Tuple

from optuna.distributions import CategoricalDistribution

from kdzoo.kd.base import build_distance, build_transform, check_chain, registered
from kdzoo.kd.term import TERM_KEYS
from kdzoo.registry import DISTANCES, KD_TRANSFORMS
from kdzoo.utils import check_keys, missing_keys

#: Keys a term template may have: a distill term's keys (one list, shared with the
#: Distiller) plus the search-only ones.
TEMPLATE_KEYS = TERM_KEYS + ('transform_slots', 'input_rank')
#: Sentinel state: the rank walk went wrong (invalid prefix).
_INVALID = object()


def label_of(value: Any) -> Any:
    """The Optuna-storable label of a choice: primitives as they are, dicts as
    ``'type(k=v, ...)'``, anything else as its ``repr``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        value = dict(value)
        name = value.pop('type', 'dict')
        args = ', '.join(f'{k}={label_of(v)}' for k, v in sorted(value.items()))
        return f'{name}({args})'
    return repr(value)


def _plain(value: Any) -> Any:
    """ConfigDict / tuples -> plain dicts and lists (for json and for the trial config)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Decision:
    """One categorical decision.

    Args:
        name: the Optuna parameter name, e.g. ``'kd0.distance'``.
        kind: ``'transform'``, ``'distance'`` or ``'value'`` (no effect on validity).
        values: the choices (config values).
        target: where the value goes: ``('term', index, key)`` with key ``'transforms'``,
            ``'distance'``, ``'weight'`` or ``'tau'``; ``('student', key)``;
            ``('cfg', dotted_key)``.
        input_rank: rank of the term's input (transform / distance decisions).
    """

    def __init__(self, name: str, kind: str, values: Sequence[Any], target: tuple,
                 input_rank: Optional[int] = None):
        if not values:
            raise ValueError(f'search space: decision {name!r} has no choices')
        self.name = name
        self.kind = kind
        self.values = [_plain(v) for v in values]
        self.labels = [label_of(v) for v in self.values]
        if len(set(map(json.dumps, self.labels))) != len(self.labels):
            raise ValueError(f'search space: decision {name!r} has duplicate choices '
                             f'{self.labels}')
        self.target = target
        self.input_rank = input_rank
        self.modules = [self._build(v) for v in self.values] if kind != 'value' else None

    def _build(self, value):
        build = build_transform if self.kind == 'transform' else build_distance
        registry = KD_TRANSFORMS if self.kind == 'transform' else DISTANCES
        name = value.get('type') if isinstance(value, dict) else value
        if isinstance(name, str) and registry.get(name) is None:
            try:  # a misspelt name: fail now, with the registry's "did you mean"
                build(value)
            except KeyError as err:
                raise KeyError(f'search space: decision {self.name!r}: {err.args[0]}') \
                    from None
        try:
            return build(value)
        except Exception as err:  # a choice that cannot be built is never valid
            return err

    @property
    def distribution(self) -> CategoricalDistribution:
        return CategoricalDistribution(self.labels)

    def check_label(self, label: Any, where: str) -> None:
        """Raise a KeyError naming ``where`` when ``label`` is not a choice."""
        try:
            self.index(label)
        except KeyError:
            raise KeyError(f'{where}: {self.name}={label!r} is not a choice; the choices '
                           f'are {self.labels}') from None

    def index(self, label: Any) -> int:
        for i, own in enumerate(self.labels):
            if type(own) is type(label) and own == label:
                return i
        for i, own in enumerate(self.labels):  # 1 == 1.0 after a json round trip
            if own == label:
                return i
        raise KeyError(f'{label!r} is not a choice of {self.name!r} ({self.labels})')

    def value(self, label: Any) -> Any:
        return copy.deepcopy(self.values[self.index(label)])

    def step(self, state, index: int):
        """The rank state after choosing ``index`` in ``state`` (``_INVALID`` if invalid).

        ``state`` is the current tensor rank inside a term, or ``None`` between terms.
        """
        if self.kind == 'value':
            return state
        module = self.modules[index]
        if isinstance(module, Exception):
            return _INVALID
        rank = self.input_rank if state is None else state
        if rank not in module.ranks:
            return _INVALID
        if self.kind == 'transform':
            return module.output_rank(rank)
        return None  # a distance ends its term

    def __repr__(self):
        return f'Decision({self.name!r}, {self.labels})'


def _generate(registry, spec: dict, kind: str) -> List[Any]:
    """Names from a registry: ``dict(generate=dict(family=..., rank=...), include=[...],
    exclude=[...])``; transforms always get the no-op ``'no'`` first unless
    ``include_no=False``."""
    check_keys(spec, ('generate', 'include', 'exclude', 'include_no', 'num_slots'),
               f'a generated {kind} choice list of the search space')
    names = list(registered(registry, **dict(spec.get('generate') or {})))
    names = [n for n in names if n not in set(spec.get('exclude', ()))]
    for extra in spec.get('include', ()):
        if extra not in names:
            names.append(extra)
    if kind == 'transform' and spec.get('include_no', True):
        names = ['no'] + [n for n in names if n != 'no']
    if not names:
        raise ValueError(f'search space: the {kind} filter {spec} matches nothing')
    return names


def _as_choices(value, registry=None, kind='value') -> List[Any]:
    if isinstance(value, dict) and ('generate' in value or 'include' in value):
        return _generate(registry, value, kind)
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


class SearchSpace:
    """Decisions in order, plus the fixed parts of each term template.

    Built from the ``search.space`` dict of a config::

        space = dict(
            terms=[dict(student='backbone.fc', teacher='backbone.fc', input_rank=2,
                        transform_slots=[['no', 'softmax_C'], ['no', 'tanh']],
                        distance=['kl', 'l2'], weight=[0.5, 1.0], tau=[1.0, 4.0])],
            student=dict(width_mult=[0.5, 1.0]),
            cfg={'optim_wrapper.optimizer.lr': [0.05, 0.1]},
        )

    ``transform_slots`` is a list of slots (each a list of choices or a
    ``dict(generate=dict(<registered() filters>))``) or one such dict with
    ``num_slots=K``. A ``transforms`` list gives a fixed chain instead. ``weight`` / ``tau``
    may be a list (a decision) or a number (fixed).
    """

    def __init__(self, terms: Sequence[dict], student: Optional[dict] = None,
                 cfg: Optional[dict] = None):
        if not terms:
            raise ValueError('search.space.terms is empty: give at least one term template')
        self.templates: List[dict] = []
        self.decisions: List[Decision] = []
        for index, template in enumerate(terms):
            self._add_term(index, dict(template))
        student = dict(student or {})
        self.student_path = student.pop('path', None)
        for key, value in student.items():
            self.decisions.append(Decision(f'student.{key}', 'value', _as_choices(value),
                                           ('student', key)))
        for key, value in dict(cfg or {}).items():
            self.decisions.append(Decision(f'cfg.{key}', 'value', _as_choices(value),
                                           ('cfg', key)))
        names = [d.name for d in self.decisions]
        if len(set(names)) != len(names):
            raise ValueError(f'search space: duplicate decision names {names}; give the '
                             f'terms distinct names')
        self._count = lru_cache(maxsize=None)(self._count_uncached)
        if self.count() == 0:
            raise ValueError(
                'search space: no valid distiller: in some term, no transform chain fits the '
                'input_rank together with any of its distances (python tools/search.py '
                f'CONFIG --show-space lists the decisions): {self.names}')

    @classmethod
    def from_config(cls, space: dict) -> 'SearchSpace':
        space = _plain(dict(space))
        check_keys(space, ('terms', 'student', 'cfg'), 'search.space')
        return cls(space.get('terms', ()), space.get('student'), space.get('cfg'))

    # --- construction --------------------------------------------------------------------
    def _add_term(self, index: int, template: dict) -> None:
        check_keys(template, TEMPLATE_KEYS, f'search.space.terms[{index}]')
        missing_keys(template, ('student', 'teacher', 'distance'),
                     f'search.space.terms[{index}]')
        if 'transforms' in template and 'transform_slots' in template:
            raise KeyError(f'search.space.terms[{index}]: give transform_slots (searched) or '
                           f'transforms (a fixed chain), not both')
        prefix = template.get('name') or f'kd{index}'
        rank = int(template.get('input_rank', 2))
        slots = template.get('transform_slots')
        if slots is None:
            slots = [[t] for t in template.get('transforms', ())]
        elif isinstance(slots, dict):
            slots = [dict(slots)] * int(slots.get('num_slots', 1))
        for s, slot in enumerate(slots):
            choices = _as_choices(slot, KD_TRANSFORMS, 'transform')
            self.decisions.append(Decision(f'{prefix}.transform{s}', 'transform', choices,
                                           ('term', index, 'transforms'), rank))
        self.decisions.append(Decision(
            f'{prefix}.distance', 'distance',
            _as_choices(template['distance'], DISTANCES, 'distance'),
            ('term', index, 'distance'), rank))
        for key in ('weight', 'tau'):
            if isinstance(template.get(key), (list, tuple)):
                self.decisions.append(Decision(f'{prefix}.{key}', 'value', template[key],
                                               ('term', index, key)))
        fixed = {k: v for k, v in template.items()
                 if k in ('student', 'teacher', 'connector', 'name')
                 or (k in ('weight', 'tau') and not isinstance(v, (list, tuple)))}
        self.templates.append(dict(fixed=fixed, input_rank=rank, prefix=prefix))

    # --- Optuna view -----------------------------------------------------------------------
    @property
    def names(self) -> List[str]:
        return [d.name for d in self.decisions]

    def distributions(self) -> Dict[str, CategoricalDistribution]:
        """Parameter name -> distribution, in decision order (pass to ``study.ask``)."""
        return {d.name: d.distribution for d in self.decisions}

    def signature(self) -> str:
        """A json string that identifies the space (stored with the study)."""
        return json.dumps([[d.name, d.labels] for d in self.decisions])

    def path_of(self, params: Dict[str, Any]) -> Optional[Tuple[int, ...]]:
        """Choice indices of a full assignment, or ``None`` if it does not fit the space."""
        try:
            return tuple(d.index(params[d.name]) for d in self.decisions)
        except KeyError:
            return None

    def labels_of(self, path: Sequence[int]) -> Dict[str, Any]:
        return {d.name: d.labels[i] for d, i in zip(self.decisions, path)}

    # --- validity ----------------------------------------------------------------------------
    def _count_uncached(self, depth: int, state) -> int:
        if depth == len(self.decisions):
            return 1 if state is None else 0
        decision = self.decisions[depth]
        total = 0
        for i in range(len(decision.values)):
            after = decision.step(state, i)
            if after is not _INVALID:
                total += self._count(depth + 1, after)
        return total

    def count(self, depth: int = 0, state=None) -> int:
        """Valid completions from decision ``depth`` in rank ``state`` (all: ``count()``)."""
        return self._count(depth, state)

    def __len__(self) -> int:
        return self.count()

    def valid_choices(self, depth: int, state) -> List[Tuple[int, Any]]:
        """``(index, next_state)`` of the choices at ``depth`` that keep a valid completion."""
        decision = self.decisions[depth]
        out = []
        for i in range(len(decision.values)):
            after = decision.step(state, i)
            if after is not _INVALID and self._count(depth + 1, after) > 0:
                out.append((i, after))
        return out

    def first_valid(self) -> Dict[str, Any]:
        """The labels of the first valid distiller (in decision order)."""
        state, path = None, []
        for depth in range(len(self.decisions)):
            index, state = self.valid_choices(depth, state)[0]
            path.append(index)
        return self.labels_of(path)

    def options(self, depth: int, state, fixed: Optional[Dict[str, Any]] = None
                ) -> List[Tuple[int, Any]]:
        """:meth:`valid_choices`, narrowed to the label that ``fixed`` (an enqueued trial's
        parameters) gives the decision; that label is kept even when it leads nowhere
        valid (the loop then prunes the trial)."""
        options = self.valid_choices(depth, state)
        decision = self.decisions[depth]
        if fixed and decision.name in fixed:
            wanted = decision.index(fixed[decision.name])
            options = [o for o in options if o[0] == wanted] or [
                (wanted, decision.step(state, wanted))]
        return options

    def walk(self, path: Sequence[int]):
        """The rank states along ``path`` (``states[d]`` before decision ``d``)."""
        states, state = [], None
        for decision, i in zip(self.decisions, path):
            states.append(state)
            state = _INVALID if state is _INVALID else decision.step(state, i)
        return states, state

    def check(self, params: Dict[str, Any]) -> Optional[str]:
        """``None`` if ``params`` is a valid distiller, else the reason (a message)."""
        path = self.path_of(params)
        if path is None:
            missing = [d.name for d in self.decisions if d.name not in params]
            return f'parameters missing or not in the space: {missing or params}'
        for t, template in enumerate(self.templates):
            chain, distance = [], None
            for d, i in zip(self.decisions, path):
                if d.target[:2] != ('term', t):
                    continue
                module = d.modules[i] if d.modules is not None else None
                if isinstance(module, Exception):
                    return f'{d.name}={d.labels[i]!r} cannot be built: {module}'
                if d.kind == 'transform':
                    chain.append(module)
                elif d.kind == 'distance':
                    distance = module
            try:
                check_chain(chain, distance, template['input_rank'])
            except ValueError as err:
                return f'invalid chain in term {template["prefix"]!r}: {err}'
        return None

    # --- to config ------------------------------------------------------------------------
    def materialize(self, params: Dict[str, Any]) -> Tuple[List[dict], dict, dict]:
        """``(distill_terms, student_knobs, cfg_knobs)`` for an assignment of labels.

        Transforms chosen as ``'no'`` are left out of the written chain.
        """
        terms = []
        for template in self.templates:
            term = copy.deepcopy(template['fixed'])
            term.update(transforms=[], weight=term.get('weight', 1.0),
                        tau=term.get('tau', 1.0))
            terms.append(term)
        student, cfg = {}, {}
        for d in self.decisions:
            value = d.value(params[d.name])
            if d.target[0] == 'term':
                _, t, key = d.target
                if key == 'transforms':
                    if value != 'no':
                        terms[t]['transforms'].append(value)
                else:
                    terms[t][key] = value
            elif d.target[0] == 'student':
                student[d.target[1]] = value
            else:
                cfg[d.target[1]] = value
        ordered = []
        for term in terms:  # the usual reading order of a term line
            keys = ['student', 'teacher', 'transforms', 'distance', 'weight', 'tau',
                    'connector', 'name']
            line = {k: term[k] for k in keys if k in term}
            if not line['transforms']:
                line.pop('transforms')
            ordered.append(line)
        return ordered, student, cfg

    def reordered(self, names: Sequence[str]) -> 'SearchSpace':
        """A copy whose decisions come in the order of ``names`` (the first ones; the rest
        keep their order). Only the tree order (MCTS) changes; the parameters stay the same.
        Within a term, transform slots must stay before its distance (the rank walk needs
        them first)."""
        by_name = {d.name: d for d in self.decisions}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise KeyError(f'unknown decisions {unknown}; the space has {self.names}')
        order = [by_name[n] for n in names] + [d for d in self.decisions
                                               if d.name not in names]
        for i, d in enumerate(order):
            if d.kind == 'transform':
                later = [e for e in order[:i]
                         if e.kind == 'distance' and e.target[1] == d.target[1]]
                if later:
                    raise ValueError(f'{d.name} must come before {later[0].name}')
        out = copy.copy(self)
        out.decisions = order
        out._count = lru_cache(maxsize=None)(out._count_uncached)
        return out

    def describe(self) -> str:
        lines = [f'{len(self.decisions)} decisions, {self.count()} valid distillers:']
        for d in self.decisions:
            lines.append(f'  {d.name}: {d.labels}')
        return '\n'.join(lines)
