"""Teacher pools: several frozen teachers behind one distiller, and DynaKD's Cat(theta).

A :class:`~kdzoo.models.Distiller` built with ``teachers=[...]`` (instead of ``teacher=``)
holds a :class:`TeacherPool`. Each member is any teacher source :func:`build_teacher`
accepts (a kdzoo architecture name, ``timm/``, ``torchvision/``, a config file, ``mmdet::`` /
``mmseg::``, a distiller config whose student is a teacher assistant), with its own
checkpoint, view (preprocessing, input size) and module paths::

    teachers=[
        dict(name='r32', teacher='configs/x/resnet32.py', teacher_checkpoint='r32.pth'),
        dict(name='vit', teacher='timm/vit_tiny_patch16_224', teacher_checkpoint='vit.pth',
             teacher_input_size=(224, 224), paths={'backbone.fc': 'backbone.head'}),
    ],
    pool=dict(mode='sample', theta=None, scale='prob'),

A distill term names one teacher path; a member's ``paths`` maps it to that member's own
module, or the term's ``teacher=`` is a dict ``{member name: path}``. Every member must give
the same shape at a term's paths (checked on the first training step, when every member runs
once; the error names the member and both shapes).

Modes (``pool.mode``):

- ``'mean'``: every member runs; the teacher tensor of a term is ``sum_i theta_i A_Ti``
  (``theta`` uniform unless given: the classic average of teachers);
- ``'sum'``: every member runs; one loss per member and term, ``loss_<term>_<member>``,
  each at the term's full weight;
- ``'sample'``: DynaKD. One member ``k ~ Cat(theta)`` per step, the only one that runs; its
  loss is weighted by ``theta_k`` (``scale='prob'``, the paper's objective) or by
  ``N * theta_k`` (``scale='normalized'``: a uniform pool weighs like one teacher).

``theta`` lives on the simplex as ``softmax(pool.theta_logits)``: a parameter of the
distiller (so saved in its checkpoints and restored on resume) that the main optimizer never
moves (``requires_grad=False``; only DynaKD's theta-step, :func:`unrolled_validation_loss`
and :class:`kdzoo.engine.DynaKDSearchHook`, gives it a gradient).
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import nn
from torch.func import functional_call

from kdzoo.utils.config_keys import check_keys, missing_keys
from .recorder import FeatureRecorder, find_module, parse_source
from .teachers import build_teacher, teacher_config, teacher_forward

#: The keys of one entry of a distiller's ``teachers=[...]``.
MEMBER_KEYS = ('teacher', 'teacher_checkpoint', 'name', 'paths', 'teacher_preprocess',
               'teacher_input_size')
#: The keys of a distiller's ``pool=dict(...)``.
POOL_KEYS = ('mode', 'theta', 'scale')
POOL_MODES = ('mean', 'sum', 'sample')
#: How a sampled member's loss is weighted: by theta_k (the paper) or by N * theta_k.
SAMPLE_SCALES = ('prob', 'normalized')


@dataclass
class PoolMember:
    """One teacher of a pool: its frozen model (outside the distiller's module tree), where it
    comes from, its view and its module path for each distill term."""
    name: str
    model: nn.Module
    spec: object
    cfg: Optional[dict]
    preprocess: str = 'student'
    input_size: Optional[tuple] = None
    paths: Dict[str, str] = field(default_factory=dict)
    term_paths: List[str] = field(default_factory=list)
    recorder: Optional[FeatureRecorder] = None


def _check_theta(theta, names: Sequence[str]) -> torch.Tensor:
    """``theta`` (a list in member order, or a dict ``{member: p}``) as a probability vector;
    errors name the bad value and the members."""
    if isinstance(theta, dict):
        check_keys(theta, names, 'pool.theta', error=KeyError)
        missing = [n for n in names if n not in theta]
        if missing:
            raise KeyError(f'pool.theta has no probability for members {missing}; the '
                           f'members are {list(names)}')
        theta = [theta[n] for n in names]
    if not isinstance(theta, (list, tuple)):
        raise TypeError(f'pool.theta must be a list (member order) or a dict {{member: p}}, '
                        f'got {type(theta).__name__}')
    if len(theta) != len(names):
        raise ValueError(f'pool.theta has {len(theta)} entries but the pool has {len(names)} '
                         f'members {list(names)}')
    values = [float(v) for v in theta]
    bad = [(n, v) for n, v in zip(names, values) if not math.isfinite(v) or v < 0]
    if bad:
        raise ValueError(f'pool.theta must be probabilities >= 0; bad entries: {bad}')
    total = sum(values)
    if abs(total - 1.0) > 1e-4:
        raise ValueError(f'pool.theta={values} sums to {total:g}; give a distribution over '
                         f'the members {list(names)} (it must sum to 1)')
    return torch.tensor(values, dtype=torch.float64) / total


class TeacherPool(nn.Module):
    """The members of a teacher pool, their mode and ``theta = softmax(theta_logits)``.

    Only ``theta_logits`` is in the module tree: the members' models are kept outside it (not
    saved, not in any optimizer, not wrapped by DDP); the distiller moves them with ``.to()``
    and keeps them in eval mode.

    Args:
        teachers: the member dicts (:data:`MEMBER_KEYS`).
        pool: ``mode`` (:data:`POOL_MODES`), ``theta`` (a list in member order or a dict by
            name; default uniform), ``scale`` (:data:`SAMPLE_SCALES`, ``sample`` only).
        term_teachers: the ``teacher`` entry of each distill term (a path, or a dict
            ``{member: path}``).
        student_shape: ``num_classes`` / ``in_channels`` the shorthands take.
        config_dir: where relative teacher config paths are looked up first.
    """

    def __init__(self, teachers: Sequence[dict], pool: Optional[dict],
                 term_teachers: Sequence[Union[str, dict]], student_shape: dict,
                 config_dir: Optional[str] = None):
        super().__init__()
        pool = dict(pool or {})
        check_keys(pool, POOL_KEYS, 'pool')
        mode = pool.get('mode', 'mean')
        if mode not in POOL_MODES:
            raise ValueError(f'pool.mode={mode!r}; valid: {", ".join(POOL_MODES)}')
        self.mode = mode
        if 'scale' in pool and mode != 'sample':
            raise ValueError(f"pool.scale applies to mode='sample' only (mode={mode!r})")
        self.scale = pool.get('scale', 'prob')
        if self.scale not in SAMPLE_SCALES:
            raise ValueError(f'pool.scale={self.scale!r}; valid: {", ".join(SAMPLE_SCALES)}')
        if mode == 'sum' and pool.get('theta') is not None:
            raise ValueError("pool.theta is used by mode 'mean' (weights of the average) and "
                             "'sample' (the distribution); mode 'sum' weighs every member 1")
        if not isinstance(teachers, (list, tuple)) or not teachers:
            raise ValueError('teachers must be a non-empty list of member dicts, e.g. '
                             "[dict(name='t1', teacher='resnet32', teacher_checkpoint=...)]")
        self.members: List[PoolMember] = []
        for index, member in enumerate(teachers):
            self.members.append(self._build_member(index, member, student_shape, config_dir))
        names = [m.name for m in self.members]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f'teachers: member names must be unique; repeated: {duplicates} '
                             f'(set name=... on each)')
        self.names = names
        self._resolve_paths(term_teachers)
        theta = pool.get('theta')
        probs = (torch.full((len(names),), 1.0 / len(names), dtype=torch.float64)
                 if theta is None else _check_theta(theta, names))
        # log(0) = -inf: a member with probability 0 is never sampled; softmax gives it 0.
        self.theta_logits = nn.Parameter(probs.log().float(), requires_grad=False)
        self.shapes_checked = False
        #: How often each member was drawn (``sample``) since the last :meth:`take_counts`.
        self.counts = [0] * len(names)

    # --- building ---
    @staticmethod
    def _build_member(index: int, member: dict, student_shape: dict,
                      config_dir: Optional[str]) -> PoolMember:
        where = f'teachers[{index}]'
        if not isinstance(member, dict):
            raise TypeError(f'{where} must be a dict with the keys {", ".join(MEMBER_KEYS)}; '
                            f'got {type(member).__name__}')
        member = dict(member)
        check_keys(member, MEMBER_KEYS, where)
        missing_keys(member, ('teacher',), where)
        name = str(member.get('name', f'teacher{index}'))
        if not name or '.' in name:
            raise ValueError(f"{where}: name={name!r} must be a non-empty name without '.'")
        spec = member['teacher']
        preprocess = member.get('teacher_preprocess', 'student')
        if preprocess not in ('student', 'own'):
            raise ValueError(f'{where} ({name!r}): teacher_preprocess={preprocess!r}; valid: '
                             f'"student", "own"')
        paths = member.get('paths') or {}
        if not isinstance(paths, dict):
            raise TypeError(f'{where} ({name!r}): paths must be a dict {{term teacher path: '
                            f'this member\'s path}}, got {type(paths).__name__}')
        if isinstance(spec, nn.Module):
            if member.get('teacher_checkpoint') is not None:
                raise ValueError(f'{where} ({name!r}): teacher_checkpoint with a given module; '
                                 f'load its weights before passing it')
            cfg, model = None, build_teacher(spec)
        else:
            try:
                cfg = teacher_config(spec, config_dir=config_dir,
                                     checkpoint=member.get('teacher_checkpoint'),
                                     **student_shape)
                model = build_teacher(cfg)
            except Exception as err:
                from .distiller import _message, _rewrap
                raise _rewrap(err, f'{where} ({name!r}): {_message(err)}') from err
        if preprocess == 'own' and getattr(model, 'data_preprocessor', None) is None:
            raise ValueError(f'{where} ({name!r}): teacher_preprocess="own" but the teacher '
                             f'has no data_preprocessor')
        size = member.get('teacher_input_size')
        return PoolMember(name=name, model=model, spec=spec, cfg=cfg, preprocess=preprocess,
                          input_size=tuple(size) if size else None, paths=dict(paths))

    def _resolve_paths(self, term_teachers: Sequence[Union[str, dict]]) -> None:
        """Each member's module path for each term; unknown modules and names are refused."""
        sources = sorted({t for t in term_teachers if isinstance(t, str)})
        for member in self.members:
            unused = sorted(set(member.paths) - set(sources))
            if unused:
                raise KeyError(f'teacher pool member {member.name!r}: paths keys {unused} are '
                               f'not the teacher path of any distill term; the terms\' '
                               f'teacher paths are {sources}')
        for i, teacher in enumerate(term_teachers):
            if isinstance(teacher, dict):
                check_keys(teacher, self.names, f'distill_terms[{i}].teacher')
                missing = [n for n in self.names if n not in teacher]
                if missing:
                    raise KeyError(f'distill_terms[{i}].teacher names a path per member but '
                                   f'not for {missing}; the members are {self.names}')
            for member in self.members:
                path = teacher[member.name] if isinstance(teacher, dict) else \
                    member.paths.get(teacher, teacher)
                if not isinstance(path, str):
                    raise TypeError(f'distill_terms[{i}].teacher for member {member.name!r} '
                                    f'must be a module path (str), got {path!r}')
                find_module(member.model, parse_source(path)[0],
                            f'teacher pool member {member.name!r}')
                member.term_paths.append(path)
        for member in self.members:
            member.recorder = FeatureRecorder(member.model, member.term_paths,
                                              owner=f'teacher pool member {member.name!r}')

    # --- theta ---
    @property
    def theta(self) -> torch.Tensor:
        """The distribution over the members, ``softmax(theta_logits)``."""
        return self.theta_logits.softmax(0)

    def theta_dict(self) -> Dict[str, float]:
        return {n: float(p) for n, p in zip(self.names, self.theta.detach().cpu())}

    def sample(self) -> int:
        """``k ~ Cat(theta)`` from torch's global RNG (seeded per iteration by
        :class:`kdzoo.engine.StepSeedHook`, so a resumed run draws the same members)."""
        probs = self.theta.detach().float().cpu()
        return int(torch.multinomial(probs, 1).item())

    def take_counts(self) -> Dict[str, int]:
        """The draws per member since the last call, then reset."""
        counts = dict(zip(self.names, self.counts))
        self.counts = [0] * len(self.names)
        return counts

    def sample_weight(self, index: int) -> torch.Tensor:
        """The loss weight of sampled member ``index``: ``theta_k`` or ``N * theta_k``."""
        weight = self.theta[index].detach()
        return weight * len(self.members) if self.scale == 'normalized' else weight

    # --- running ---
    def member_inputs(self, member: PoolMember, inputs, teacher_inputs):
        if isinstance(teacher_inputs, dict) and member.name in teacher_inputs:
            return teacher_inputs[member.name]
        return inputs

    def run(self, indices: Sequence[int], inputs, teacher_inputs=None,
            data_samples=None) -> Dict[int, List[torch.Tensor]]:
        """Forward the members ``indices`` (only those) under ``no_grad``; their features,
        one per distill term, by member index."""
        feats = {}
        for index in indices:
            member = self.members[index]
            x = self.member_inputs(member, inputs, teacher_inputs)
            with torch.no_grad(), member.recorder:
                try:
                    teacher_forward(member.model, x, data_samples)
                except Exception as err:
                    shape = tuple(getattr(x, 'shape', ()))
                    raise RuntimeError(f'teacher pool member {member.name!r} failed on '
                                       f'inputs of shape {shape}: {err}') from err
            feats[index] = [member.recorder.get(p) for p in member.term_paths]
        return feats

    def check_shapes(self, feats: Dict[int, List[torch.Tensor]],
                     term_names: Sequence[str]) -> None:
        """Every member must give the same shape at each term's teacher path."""
        indices = sorted(feats)
        ref = indices[0]
        for t, term in enumerate(term_names):
            want = tuple(feats[ref][t].shape)
            for index in indices[1:]:
                got = tuple(feats[index][t].shape)
                if got != want:
                    a, b = self.members[index], self.members[ref]
                    raise ValueError(
                        f'teacher pool: member {a.name!r} gives shape {got} at '
                        f'{a.term_paths[t]!r} for distill term {term!r}, but member '
                        f'{b.name!r} gives shape {want} at {b.term_paths[t]!r}; every member '
                        f'must give the same shape at a term\'s teacher path (map another '
                        f'module with the member\'s paths={{...}} or a per-member '
                        f'teacher=dict(...) in the term)')
        self.shapes_checked = True

    def mix(self, feats: Dict[int, List[torch.Tensor]], term: int,
            weights: torch.Tensor) -> torch.Tensor:
        """``sum_i weights_i * A_Ti`` for one term (the continuous relaxation f_bar)."""
        out = None
        for index in sorted(feats):
            value = feats[index][term].detach()
            w = weights[index].to(value.dtype)
            out = value * w if out is None else out + value * w
        return out

    def describe(self) -> List[str]:
        """Lines of the distiller's start-up summary."""
        from .distiller import describe_teacher, teacher_weights
        theta = ', '.join(f'{n}={p:.4g}' for n, p in self.theta_dict().items())
        extra = f", scale={self.scale!r}" if self.mode == 'sample' else ''
        lines = [f'Distiller: teacher pool of {len(self.members)} (mode={self.mode!r}'
                 f'{extra}), theta: {theta}']
        for member in self.members:
            weights = teacher_weights(member.cfg)
            if member.cfg is None:
                weights = 'the given module (its own weights)'
            elif weights is None:
                weights = 'random init (no teacher_checkpoint)'
            view = ("its own preprocessing" if member.preprocess == 'own'
                    else "the student's inputs")
            if member.input_size:
                view += f', resized to {member.input_size}'
            lines.append(f'  member {member.name!r}: {describe_teacher(member.spec, member.cfg)}'
                         f'; weights: {weights}; inputs: {view}; paths: {member.term_paths}')
        return lines

    def random_init_members(self) -> List[str]:
        from .distiller import teacher_weights
        return [m.name for m in self.members
                if m.cfg is not None and teacher_weights(m.cfg) is None]


def unrolled_validation_loss(distiller: nn.Module, train: dict, val: dict,
                             lr: float) -> torch.Tensor:
    """DynaKD's theta-step objective, one step unrolled (DARTS, second order):

    ``L_val(w - lr * grad_w L_train(w, theta))``, where ``L_train`` is the distiller's loss
    with the continuous relaxation of the pool (every member runs; a term's teacher tensor is
    ``f_bar = sum_i theta_i A_Ti`` with ``theta = softmax(theta_logits)``) and ``L_val`` is the
    student's task loss on a validation batch. ``w`` are the trainable weights of the student
    and the terms (connectors); the returned value carries the graph to
    ``pool.theta_logits`` (which must have ``requires_grad=True``) through the mixed second
    derivative ``d/dtheta grad_w L_train``. Buffers (BN statistics) are copied, so the
    distiller's own state is not changed.

    Args:
        distiller: a :class:`~kdzoo.models.Distiller` with a pool.
        train: a preprocessed training batch (``inputs``, ``data_samples``, optional
            ``teacher_inputs``), as the data preprocessor gives it with ``training=True``.
        val: a preprocessed validation batch (``inputs``, ``data_samples``).
        lr: the step size of the virtual student update (DARTS's xi).
    """
    theta = distiller.pool.theta_logits
    params = {n: p for n, p in distiller.named_parameters()
              if p.requires_grad and p is not theta}
    buffers = {n: b.clone() for n, b in distiller.named_buffers()}
    train_losses = functional_call(
        distiller, {**params, **buffers}, args=(train['inputs'],),
        kwargs=dict(data_samples=train.get('data_samples'), mode='relaxed',
                    teacher_inputs=train.get('teacher_inputs')), strict=False)
    loss = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
               for k, v in train_losses.items() if 'loss' in k)
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=True,
                                allow_unused=True)
    updated = {n: params[n] if g is None else params[n] - lr * g
               for n, g in zip(names, grads)}
    prefix = 'student.'
    student_state = {n[len(prefix):]: v for n, v in updated.items() if n.startswith(prefix)}
    student_state.update({n[len(prefix):]: b.clone() for n, b in
                          distiller.named_buffers() if n.startswith(prefix)})
    val_losses = functional_call(distiller.student, student_state, args=(val['inputs'],),
                                 kwargs=dict(data_samples=val.get('data_samples'),
                                             mode='loss'), strict=False)
    return sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
               for k, v in val_losses.items() if 'loss' in k)


__all__ = ['TeacherPool', 'PoolMember', 'MEMBER_KEYS', 'POOL_KEYS', 'POOL_MODES',
           'SAMPLE_SCALES', 'unrolled_validation_loss']
