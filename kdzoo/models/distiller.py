"""The Distiller: a student, a frozen teacher and a list of distill terms."""
import logging
import os.path as osp
from typing import Dict, Optional, Sequence, Union

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.registry import DefaultScope
from torch import nn
import torch.nn.functional as F

from kdzoo.kd import DistillTerm
from kdzoo.kd.term import TERM_KEYS
from kdzoo.registry import CONNECTORS, MODELS
from kdzoo.teaching.modes import Teaching, describe_teaching
from kdzoo.teaching.store import TeacherStore
from kdzoo.utils.config_keys import check_keys, missing_keys
from .classifier import gt_labels_of
from .pool import TeacherPool
from .recorder import FeatureRecorder, find_module, parse_source
from .sources import OnlineTeacher, StoredTeacher, file_sha256
from .teachers import build_teacher, teacher_config


@MODELS.register_module()
class DistillDataPreprocessor(BaseDataPreprocessor):
    """Prepares the student's inputs and, when the teacher needs other ones, the teacher's.

    By default the teacher sees exactly the student's inputs (the same crop, flip and mixup:
    FunMatch's consistent teaching). With ``teacher_preprocessor`` the teacher gets its own
    normalisation of the same raw batch; ``teacher_input_size`` resizes its inputs.

    For a teacher pool, ``member_views`` maps the name of each member that sees other inputs
    than the student to ``(its preprocessor or None, its input size or None)``; training
    batches then carry ``teacher_inputs={name: tensor}`` for those members.

    The teaching layer (:mod:`kdzoo.teaching`): a batch whose data carry ``teacher_inputs``
    (the teacher's own view, cut from the raw image by a ``TeachingDataset``; ``(N, K, C, H,
    W)`` for K crops) gets them normalised like the student's inputs (or by the teacher's own
    preprocessor). ``mixup_alpha`` (``funmatch``) mixes every image with its neighbour in the
    batch, ``lam * x + (1 - lam) * roll(x, 1)`` with one ``lam ~ Beta(alpha, alpha)`` per
    batch (big_vision's mixup), the same for the student's and the teacher's inputs.
    """

    def __init__(self, student_preprocessor: nn.Module,
                 teacher_preprocessor: Optional[nn.Module] = None,
                 teacher_input_size: Optional[Sequence[int]] = None,
                 member_views: Optional[Dict[str, tuple]] = None,
                 mixup_alpha: Optional[float] = None):
        super().__init__()
        self.mixup_alpha = mixup_alpha
        self.student_preprocessor = student_preprocessor
        self.teacher_preprocessor = teacher_preprocessor
        self.teacher_input_size = tuple(teacher_input_size) if teacher_input_size else None
        self.member_sizes = {}
        self.member_preprocessors = nn.ModuleDict()
        for name, (member_preprocessor, size) in (member_views or {}).items():
            if member_preprocessor is not None:
                self.member_preprocessors[name] = member_preprocessor
            self.member_sizes[name] = tuple(size) if size else None

    def forward(self, data: dict, training: bool = False) -> dict:
        view = data.get('teacher_inputs') if isinstance(data, dict) else None
        if view is not None:
            data = {k: v for k, v in data.items() if k != 'teacher_inputs'}
        out = self.student_preprocessor(data, training)
        if not training:
            return out
        if view is not None:
            out['teacher_inputs'] = self._teacher_view(view, data)
        elif self.member_sizes:
            views = {}
            for name, size in self.member_sizes.items():
                views[name] = out['inputs'] if name not in self.member_preprocessors else \
                    self.member_preprocessors[name](data, False)['inputs']
                if size is not None:
                    views[name] = F.interpolate(views[name], size=size, mode='bilinear',
                                                align_corners=False)
            out['teacher_inputs'] = views
        elif self.teacher_preprocessor is not None:
            out['teacher_inputs'] = self.teacher_preprocessor(data, False)['inputs']
        elif self.teacher_input_size is not None:
            out['teacher_inputs'] = out['inputs']
        if self.teacher_input_size is not None and out.get('teacher_inputs') is not None:
            out['teacher_inputs'] = F.interpolate(out['teacher_inputs'],
                                                  size=self.teacher_input_size,
                                                  mode='bilinear', align_corners=False)
        if self.mixup_alpha:
            self._mixup(out)
        return out

    def _teacher_view(self, view, data: dict) -> torch.Tensor:
        """Normalise the teacher's own view (a batch of ``(C, H, W)`` or ``(K, C, H, W)``)."""
        preprocessor = self.teacher_preprocessor or self.student_preprocessor
        crops = view.shape[1] if view.dim() == 5 else None
        flat = view.flatten(0, 1) if crops else view
        flat = preprocessor(dict(inputs=flat, data_samples=None), False)['inputs']
        return flat.reshape(view.shape[0], crops, *flat.shape[1:]) if crops else flat

    def _mixup(self, out: dict) -> None:
        """Mix the student's inputs and the teacher's alike (one ``lam`` per batch)."""
        lam = float(torch.distributions.Beta(self.mixup_alpha, self.mixup_alpha).sample())
        for key in ('inputs', 'teacher_inputs'):
            x = out.get(key)
            if isinstance(x, torch.Tensor):
                out[key] = lam * x + (1.0 - lam) * x.roll(1, dims=0)


@MODELS.register_module()
class Distiller(BaseModel):
    """Knowledge distillation of ``teacher`` into ``student``.

    Each entry of ``distill_terms`` is one line of config::

        dict(student='backbone.layer3', teacher='backbone.layer3',
             transforms=['satt'], distance='l2', weight=1000.0, tau=1.0,
             connector=None, name='at')

    computing ``tau^2 * weight * D(T(A_s/tau), T(A_t/tau))`` on the outputs of the named
    modules, captured by forward hooks. ``path[i]`` picks item ``i`` of a tuple output.

    Args:
        student: any MMEngine model config (a kdzoo classifier, an mmdet detector, an mmseg
            segmentor); it keeps its task loss, scaled by ``student_loss_weight``.
        teacher: see :mod:`kdzoo.models.teachers`. It is frozen, kept in eval mode, run
            under ``no_grad`` for features only, and never saved in checkpoints. The
            ``'timm/<name>'``, ``'torchvision/<name>'`` and architecture-name shorthands get
            the student's ``num_classes`` and input channels.
        teacher_checkpoint: weights of the teacher (checked when the distiller is built).
            Without one (and without weights in ``teacher``) the teacher is a random init,
            which the start-up summary warns about: nothing is downloaded.
        teacher_preprocess: ``'student'`` (default: the teacher sees the student's inputs)
            or ``'own'`` (its own data preprocessor on the same raw batch).
        teacher_input_size: resize the teacher's inputs to (H, W), e.g. a high-resolution
            teacher.
        data_preprocessor: the student's, when its own config has none (MMEngine's Runner
            passes a config's top-level ``data_preprocessor`` here).
        config_dir: the directory of the config file this distiller comes from; a relative
            teacher config path is looked up there first (then in the kdzoo repository
            root). The tools set it (:func:`kdzoo.models.teachers.set_config_dir`); without
            it, the current directory stands in.
        teachers: a teacher pool instead of ``teacher``: a list of member dicts
            (``teacher``, ``teacher_checkpoint``, ``name``, ``paths``, ``teacher_preprocess``,
            ``teacher_input_size``); see :mod:`kdzoo.models.pool`.
        pool: how the pool teaches: ``dict(mode='mean' | 'sum' | 'sample', theta=None,
            scale='prob')``; see :class:`kdzoo.models.pool.TeacherPool`.
        teaching: what the teacher sees and where its outputs come from
            (:mod:`kdzoo.teaching`): ``dict(mode='same/ic', size=..., teacher_size=...,
            store=None, ...)``. The tools copy a config's top-level ``teaching`` here and
            wrap the train dataset in a ``TeachingDataset``. With ``store``, the teacher's
            outputs are read from the store and no teacher is built or run (``teacher`` and
            ``teacher_checkpoint``, when given, must be the store's).

    When built, it logs a summary: the teacher's source, its weights, and one line per term.
    An error while computing a term starts with ``distill term 'NAME' (student -> teacher):``.
    """

    def __init__(self,
                 student: Union[dict, BaseModel],
                 teacher: Union[str, dict, nn.Module, None] = None,
                 distill_terms: Sequence[dict] = (),
                 teacher_checkpoint: Optional[str] = None,
                 student_loss_weight: float = 1.0,
                 teacher_preprocess: str = 'student',
                 teacher_input_size: Optional[Sequence[int]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 config_dir: Optional[str] = None,
                 teachers: Optional[Sequence[dict]] = None,
                 pool: Optional[dict] = None,
                 teaching: Optional[dict] = None):
        self.teaching = None if teaching is None else Teaching.from_cfg(teaching)
        mixup = self.teaching.mixup_alpha if self.teaching else None
        if mixup and student_loss_weight:
            raise ValueError(
                f'teaching.mode="funmatch" mixes the images of a batch, but the student\'s '
                f'task loss (student_loss_weight={student_loss_weight}) would use the unmixed '
                f'labels: set student_loss_weight=0 (FunMatch learns from the teacher only)')
        if not isinstance(student, nn.Module):
            student = dict(student)
            if data_preprocessor is not None:
                student.setdefault('data_preprocessor', data_preprocessor)
            student = MODELS.build(student)
        student_shape = classifier_shape(student)
        if teachers is not None:
            if self.teaching is not None and (self.teaching.store or
                                              not self.teaching.teacher_sees_student_batch):
                raise ValueError(
                    f'a teacher pool learns from the student\'s inputs: teaching.mode='
                    f'{self.teaching.mode!r} with teacher_size={self.teaching.teacher_size} and '
                    f'store={self.teaching.store!r} gives the teacher a view or a store of its '
                    f'own; use mode "same/rc", "same/ic" or "funmatch" at one size, no store')
            self._init_pool(student, student_shape, teacher, teachers, pool, distill_terms,
                            teacher_checkpoint, student_loss_weight, teacher_preprocess,
                            teacher_input_size, init_cfg, config_dir)
            return
        if pool is not None:
            raise ValueError('pool=... configures a teacher pool: give the members as '
                             "teachers=[dict(teacher=..., teacher_checkpoint=..., name=...), "
                             '...] instead of teacher=')
        store = self.teaching.store if self.teaching else None
        if teacher is None and store is None:
            raise ValueError('the distiller needs a teacher: teacher=... (one teacher), '
                             'teachers=[...] (a pool) or teaching=dict(store=...) (a store)')
        for i, term in enumerate(distill_terms):
            if isinstance(term, dict) and isinstance(term.get('teacher'), dict):
                raise ValueError(f'distill_terms[{i}].teacher is a dict of per-member paths '
                                 f'({term["teacher"]!r}); that needs a teacher pool '
                                 f'(teachers=[...])')
        if teacher_preprocess not in ('student', 'own'):
            raise ValueError(f'teacher_preprocess={teacher_preprocess!r}; valid: '
                             f'"student", "own"')
        if not distill_terms:
            raise ValueError('distill_terms is empty: give at least one term')
        self.term_specs = [self._check_term_cfg(i, cfg) for i, cfg in enumerate(distill_terms)]
        teacher_paths = [s['teacher'] for s in self.term_specs]
        teacher_cfg = teacher_model = teacher_preprocessor = None
        if isinstance(teacher, nn.Module):
            teacher_model = build_teacher(teacher)
        elif teacher is not None:
            teacher_cfg = teacher_config(teacher, config_dir=config_dir,
                                         checkpoint=teacher_checkpoint, **student_shape)
            if store is None:
                teacher_model = build_teacher(teacher_cfg)
        if teacher_preprocess == 'own':
            teacher_preprocessor = getattr(teacher_model, 'data_preprocessor', None)
            if teacher_preprocessor is None:
                raise ValueError('teacher_preprocess="own" but the teacher has no '
                                 'data_preprocessor' + (' (a store stands in for the '
                                                        'teacher)' if store else ''))
        preprocessor = DistillDataPreprocessor(student.data_preprocessor,
                                               teacher_preprocessor, teacher_input_size,
                                               mixup_alpha=mixup)
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)
        self.student = student
        # Outside the module tree on purpose: not in state_dict / checkpoints, not in the
        # optimizer, not wrapped by DDP. ``_apply`` and ``train`` below keep it in step.
        object.__setattr__(self, 'teacher', teacher_model)
        self.pool = None
        self.student_loss_weight = float(student_loss_weight)
        ckpt = (teacher_cfg or {}).get('checkpoint')
        #: the teacher's checkpoint file (what a teacher store records and checks)
        self.teacher_checkpoint_file = ckpt if ckpt and osp.isfile(ckpt) else None
        if store is not None:
            self.source = StoredTeacher(TeacherStore.open(store), teacher_paths)
            if teacher is not None and not isinstance(teacher, nn.Module):
                self.source.store.check_teacher(
                    describe_teacher(teacher, teacher_cfg),
                    file_sha256(ckpt) if self.teacher_checkpoint_file else None)
            self.teacher_source = self.source.description
        else:
            self.teacher_source = describe_teacher(teacher, teacher_cfg)
            for spec in self.term_specs:
                with term_errors(spec):
                    find_module(self.teacher, parse_source(spec['teacher'])[0], 'teacher')
            self.source = OnlineTeacher(self.teacher, teacher_paths, self.teacher_source)
        terms = []
        for spec in self.term_specs:
            with term_errors(spec):
                find_module(self.student, parse_source(spec['student'])[0], 'student')
                terms.append(self._build_term(spec))
        self.terms = nn.ModuleList(terms)
        self.student_recorder = FeatureRecorder(
            self.student, [s['student'] for s in self.term_specs], owner='student')
        self._ranks_checked = False
        self.teacher_shape_from_student = _filled(teacher, teacher_cfg, student_shape)
        self._log_summary(teacher_cfg, teacher_preprocess, teacher_input_size)

    def _init_pool(self, student, student_shape, teacher, teachers, pool, distill_terms,
                   teacher_checkpoint, student_loss_weight, teacher_preprocess,
                   teacher_input_size, init_cfg, config_dir) -> None:
        """A distiller whose teacher side is a :class:`~kdzoo.models.pool.TeacherPool`."""
        if teacher is not None:
            raise ValueError('give teacher=... (one teacher) or teachers=[...] (a pool), '
                             'not both')
        single_keys = dict(teacher_checkpoint=teacher_checkpoint,
                           teacher_preprocess=None if teacher_preprocess == 'student'
                           else teacher_preprocess,
                           teacher_input_size=teacher_input_size)
        for key, value in single_keys.items():
            if value is not None:
                raise ValueError(f'{key}={value!r} is a key of one teacher; with teachers=[...] '
                                 f"give it inside each member: teachers[i]['{key}']")
        if not distill_terms:
            raise ValueError('distill_terms is empty: give at least one term')
        specs = [self._check_term_cfg(i, cfg) for i, cfg in enumerate(distill_terms)]
        teacher_pool = TeacherPool(teachers, pool, [s['teacher'] for s in specs],
                                   student_shape, config_dir)
        views = {m.name: (m.model.data_preprocessor if m.preprocess == 'own' else None,
                          m.input_size)
                 for m in teacher_pool.members if m.preprocess == 'own' or m.input_size}
        preprocessor = DistillDataPreprocessor(student.data_preprocessor, member_views=views)
        super().__init__(data_preprocessor=preprocessor, init_cfg=init_cfg)
        self.student = student
        self.pool = teacher_pool
        object.__setattr__(self, 'teacher', None)
        self.teacher_source = f'a pool of {len(teacher_pool.members)} teachers'
        self.student_loss_weight = float(student_loss_weight)
        self.term_specs = specs
        terms = []
        for spec in self.term_specs:
            with term_errors(spec):
                find_module(self.student, parse_source(spec['student'])[0], 'student')
                terms.append(self._build_term(spec))
        self.terms = nn.ModuleList(terms)
        self.student_recorder = FeatureRecorder(
            self.student, [s['student'] for s in self.term_specs], owner='student')
        self.source = None
        self._ranks_checked = False
        self.teacher_shape_from_student = {}
        lines = teacher_pool.describe() + self._term_lines()
        print_log('\n'.join(lines), logger='current')
        random_init = teacher_pool.random_init_members()
        if random_init:
            print_log(f'Distiller: teacher pool members {random_init} are a random init: no '
                      f'teacher_checkpoint was given and nothing is downloaded. Set '
                      f"teachers[i]['teacher_checkpoint']=FILE.", logger='current',
                      level=logging.WARNING)

    def _term_lines(self):
        lines = []
        for spec, term in zip(self.term_specs, self.terms):
            lines.append(f'  term {spec["name"]!r}: {spec["student"]} -> {spec["teacher"]}, '
                         f'transforms={list(spec.get("transforms", []))!r}, '
                         f'distance={spec["distance"]!r}, weight={term.weight!r}, '
                         f'tau={term.tau!r}, connector={describe_connector(term.connector)}')
        return lines

    def teacher_models(self):
        """The frozen teacher modules: the teacher, or every member of the pool."""
        if self.pool is not None:
            return [m.model for m in self.pool.members]
        return [] if self.teacher is None else [self.teacher]

    def _log_summary(self, teacher_cfg: Optional[dict],
                     teacher_preprocess: str, teacher_input_size) -> None:
        """Log once what is distilled: the teacher, its weights and every term."""
        lines = [f'Distiller: teacher {self.teacher_source}']
        if self.teacher_shape_from_student:
            lines.append('  teacher ' + ', '.join(
                f'{k}={v}' for k, v in self.teacher_shape_from_student.items()) +
                ': taken from the student')
        weights = teacher_weights(teacher_cfg)
        random_init = teacher_cfg is not None and weights is None and self.teacher is not None
        if isinstance(self.source, StoredTeacher):
            weights = f'stored outputs ({weights or "a random init"} when the store was built)'
        elif weights is None and teacher_cfg is None:
            weights = 'the given module (its own weights)'
        elif weights is None:
            weights = 'random init (no teacher_checkpoint)'
        elif teacher_cfg.get('checkpoint'):
            weights = f'{weights} ({len(self.teacher.state_dict())} tensors)'
        lines.append(f'  teacher weights: {weights}')
        view = ("its own preprocessing (teacher_preprocess='own')"
                if teacher_preprocess == 'own' else "the student's inputs")
        if teacher_input_size:
            view += f', resized to {tuple(teacher_input_size)}'
        if self.teaching is not None:
            view = describe_teaching(self.teaching)
        lines.append(f'  teacher inputs: {view}')
        lines.extend(self._term_lines())
        print_log('\n'.join(lines), logger='current')
        if random_init:
            print_log(f'Distiller: the teacher ({self.teacher_source}) is a random init: no '
                      f'teacher_checkpoint was given and nothing is downloaded, so it has '
                      f'nothing to teach. Set teacher_checkpoint=FILE.', logger='current',
                      level=logging.WARNING)

    @staticmethod
    def _check_term_cfg(index: int, cfg: dict) -> dict:
        cfg = dict(cfg)
        where = f'distill_terms[{index}]'
        check_keys(cfg, TERM_KEYS, where)
        missing_keys(cfg, ('student', 'teacher', 'distance'), where)
        cfg.setdefault('name', f'kd{index}')
        return cfg

    def _build_term(self, spec: dict) -> DistillTerm:
        connector = spec.get('connector')
        if isinstance(connector, dict):
            with DefaultScope.overwrite_default_scope('kdzoo'):
                connector = CONNECTORS.build(connector)
        return DistillTerm(distance=spec['distance'], transforms=spec.get('transforms', ()),
                           weight=spec.get('weight', 1.0), tau=spec.get('tau', 1.0),
                           connector=connector, name=spec['name'])

    # Keep the out-of-tree teacher(s) on the student's device / dtype and always in eval mode.
    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        for teacher in self.teacher_models():
            teacher._apply(fn, *args, **kwargs)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        for teacher in self.teacher_models():
            teacher.eval()
        return self

    def forward(self, inputs, data_samples=None, mode: str = 'tensor',
                teacher_inputs: Optional[torch.Tensor] = None):
        """``mode='loss'``: the distillation losses; ``'relaxed'`` (a pool only): the losses
        with the pool's continuous relaxation (every member, weighted by ``theta`` with its
        gradient), DynaKD's theta-step; other modes run the student alone."""
        if mode == 'loss':
            return self.loss(inputs, data_samples, teacher_inputs)
        if mode == 'relaxed':
            if self.pool is None:
                raise ValueError("mode='relaxed' needs a teacher pool (teachers=[...])")
            return self._pool_loss(inputs, data_samples, teacher_inputs, relaxed=True)
        return self.student(inputs, data_samples, mode=mode)

    def _student_losses(self, inputs, data_samples) -> Dict[str, torch.Tensor]:
        """The student's forward, recording its features, and its scaled task losses."""
        losses = {}
        with self.student_recorder:
            if self.student_loss_weight > 0:
                task_losses = self.student(inputs, data_samples, mode='loss')
                for name, value in task_losses.items():
                    losses[name] = _scale(value, self.student_loss_weight) \
                        if 'loss' in name else value
            else:
                self.student(inputs, data_samples, mode='tensor')
        return losses

    def loss(self, inputs, data_samples=None,
             teacher_inputs: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        if self.pool is not None:
            return self._pool_loss(inputs, data_samples, teacher_inputs)
        losses = self._student_losses(inputs, data_samples)
        teacher_inputs = inputs if teacher_inputs is None else teacher_inputs
        try:
            teacher_feats = self.source.outputs(teacher_inputs, data_samples)
        except Exception as err:
            shape = tuple(getattr(teacher_inputs, 'shape', ()))
            raise _rewrap(err, f'teacher {self.teacher_source} failed on inputs of shape '
                          f'{shape}: {_message(err)}') from err
        context = self._context(data_samples)
        for spec, term in zip(self.term_specs, self.terms):
            with term_errors(spec):
                student_feat = self.student_recorder.get(spec['student'])
                teacher_feat = teacher_feats[spec['teacher']]
                if not self._ranks_checked:
                    term.check(teacher_feat.dim())
                check_connector(term.connector, spec, student_feat, teacher_feat)
                losses[f'loss_{spec["name"]}'] = term(
                    student_feat, teacher_feat.detach(), **context)
        self._ranks_checked = True
        return losses

    def _pool_loss(self, inputs, data_samples=None, teacher_inputs=None,
                   relaxed: bool = False) -> Dict[str, torch.Tensor]:
        """The losses with a teacher pool: ``mean`` / ``sum`` run every member, ``sample``
        runs the one it draws (every member runs once on the first step, to check that
        their shapes agree); ``relaxed`` mixes every member with ``theta`` (with its
        gradient)."""
        pool = self.pool
        losses = self._student_losses(inputs, data_samples)
        everyone = list(range(len(pool.members)))
        chosen = None
        if pool.mode == 'sample' and not relaxed:
            chosen = pool.sample()
            pool.counts[chosen] += 1
        run = everyone if chosen is None or not pool.shapes_checked else [chosen]
        feats = pool.run(run, inputs, teacher_inputs, data_samples)
        if not pool.shapes_checked:
            pool.check_shapes(feats, [s['name'] for s in self.term_specs])
        weights = pool.theta if relaxed else pool.theta.detach()
        context = self._context(data_samples)
        for t, (spec, term) in enumerate(zip(self.term_specs, self.terms)):
            with term_errors(spec):
                student_feat = self.student_recorder.get(spec['student'])
                if relaxed or pool.mode == 'mean':
                    pairs = [(f'loss_{spec["name"]}', pool.mix(feats, t, weights), None)]
                elif pool.mode == 'sum':
                    pairs = [(f'loss_{spec["name"]}_{pool.names[i]}', feats[i][t].detach(),
                              None) for i in everyone]
                else:
                    pairs = [(f'loss_{spec["name"]}', feats[chosen][t].detach(),
                              pool.sample_weight(chosen))]
                for key, teacher_feat, scale in pairs:
                    if not self._ranks_checked:
                        term.check(teacher_feat.dim())
                    check_connector(term.connector, spec, student_feat, teacher_feat)
                    value = term(student_feat, teacher_feat, **context)
                    losses[key] = value if scale is None else value * scale.to(value.dtype)
        self._ranks_checked = True
        return losses

    @staticmethod
    def _context(data_samples) -> dict:
        """The keyword context of every term: ``gt_labels``, ``sample_idx``, ``epoch``,
        ``iter``, and for mmdet batches ``gt_boxes`` / ``img_shapes`` /
        ``batch_input_shape`` (see :func:`detection_context`; None otherwise)."""
        hub = MessageHub.get_current_instance()
        sample_idx = data_samples.get('sample_idx') if isinstance(data_samples, dict) else None
        context = dict(gt_labels=gt_labels_of(data_samples), sample_idx=sample_idx,
                       epoch=hub.get_info('epoch', 0), iter=hub.get_info('iter', 0))
        context.update(detection_context(data_samples))
        return context


def detection_context(data_samples) -> dict:
    """The ground-truth boxes of a batch of mmdet ``DetDataSample``s, for terms such as FGD.

    ``gt_boxes``: one ``(K, 4)`` tensor per image (``x1, y1, x2, y2`` in the pixels of the
    model's input, the ``gt_instances.bboxes`` after the data preprocessor); ``img_shapes``:
    each image's ``(h, w)`` (``metainfo['img_shape']``); ``batch_input_shape``: the padded
    batch's ``(H, W)``. All three are None unless every sample carries boxes. Nothing is
    copied: the tensors are the samples' own.
    """
    empty = dict(gt_boxes=None, img_shapes=None, batch_input_shape=None)
    if not isinstance(data_samples, (list, tuple)) or not data_samples:
        return empty
    boxes, shapes = [], []
    for sample in data_samples:
        instances = getattr(sample, 'gt_instances', None)
        bboxes = getattr(instances, 'bboxes', None) if instances is not None else None
        metainfo = getattr(sample, 'metainfo', None)
        if bboxes is None or not isinstance(metainfo, dict):
            return empty
        boxes.append(getattr(bboxes, 'tensor', bboxes))  # mmdet's HorizontalBoxes or a tensor
        shapes.append(metainfo.get('img_shape'))
    batch_shape = data_samples[0].metainfo.get('batch_input_shape')
    return dict(gt_boxes=boxes, img_shapes=None if None in shapes else shapes,
                batch_input_shape=batch_shape)


def classifier_shape(model: nn.Module) -> dict:
    """``num_classes`` and ``in_channels`` of a classifier (its backbone's ``num_classes`` and
    first convolution), for the teacher shorthands; what cannot be found is left out."""
    net = getattr(model, 'backbone', model)
    shape = {}
    num_classes = getattr(net, 'num_classes', None)
    if isinstance(num_classes, int) and not isinstance(num_classes, bool) and num_classes > 0:
        shape['num_classes'] = num_classes
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            shape['in_channels'] = module.in_channels
            break
    return shape


def _filled(spec, cfg: Optional[dict], student_shape: dict) -> dict:
    """The keys of ``student_shape`` that the teacher config took because ``spec`` left them
    out (the shorthands, or a TEACHERS dict without them)."""
    if cfg is None:
        return {}
    built = cfg
    if cfg.get('type') == 'ModelTeacher':
        if not isinstance(spec, str):
            return {}  # a model config dict says its own shape
        built = cfg['model'].get('backbone', {})
    given = spec if isinstance(spec, dict) else {}
    return {k: v for k, v in student_shape.items()
            if k not in given and built.get(k) == v}


def describe_teacher(spec, cfg: Optional[dict]) -> str:
    """The teacher's source in words: ``timm/resnet18``, a config path, ``mmdet::...``."""
    if isinstance(spec, nn.Module):
        return f'a given {type(spec).__name__} module'
    if isinstance(spec, str):
        if cfg is not None and cfg.get('type') == 'ConfigTeacher' and '::' not in spec:
            from .teachers import resolve_config_path
            try:
                resolved = resolve_config_path(cfg['config'], cfg.get('config_dir'))
            except FileNotFoundError:
                resolved = None
            if resolved is not None and resolved != spec:
                return f'{spec} ({resolved})'
        return spec
    kind = spec.get('type', '?')
    named = {k: spec[k] for k in ('model_name', 'name', 'config') if k in spec}
    if kind == 'ModelTeacher' or not named:
        model = spec.get('model', spec) if kind == 'ModelTeacher' else spec
        backbone = model.get('backbone') if isinstance(model, dict) else None
        inner = backbone.get('type') if isinstance(backbone, dict) else None
        return f'{model.get("type", kind)}' + (f'(backbone={inner})' if inner else '')
    return f'{kind}(' + ', '.join(f'{k}={v!r}' for k, v in named.items()) + ')'


def teacher_weights(cfg: Optional[dict]) -> Optional[str]:
    """Where the teacher's weights come from (a file), or None for a random init."""
    if cfg is None:
        return None
    if cfg.get('checkpoint'):
        return str(cfg['checkpoint'])
    model = cfg.get('model') if cfg.get('type') == 'ModelTeacher' else None
    places = [cfg] + ([model, model.get('backbone')] if isinstance(model, dict) else [])
    for place in places:
        if isinstance(place, dict):
            for key in ('pretrained_path', 'weights', 'checkpoint_path'):
                if isinstance(place.get(key), str):
                    return f'{key}={place[key]} (adapted)'
    return None


def describe_connector(connector: Optional[nn.Module]) -> str:
    if connector is None:
        return 'None'
    args = [f'{k}={getattr(connector, k)}' for k in ('in_channels', 'out_channels')
            if hasattr(connector, k)]
    return f'{type(connector).__name__}({", ".join(args)})'


def check_connector(connector: Optional[nn.Module], spec: dict, student: torch.Tensor,
                    teacher: torch.Tensor) -> None:
    """Refuse a student feature whose channels are not the connector's ``in_channels``."""
    expected = getattr(connector, 'in_channels', None)
    if expected is None or student.dim() < 2 or student.shape[1] == expected:
        return
    out = f', out_channels={teacher.shape[1]}' if teacher.dim() >= 2 else ''
    raise ValueError(
        f'connector {describe_connector(connector)} expects {expected} input channels, but '
        f'the student feature {spec["student"]!r} has shape {tuple(student.shape)} '
        f'({student.shape[1]} channels); the teacher feature {spec["teacher"]!r} has shape '
        f'{tuple(teacher.shape)}. Set the connector\'s in_channels={student.shape[1]}{out}.')


def _message(err: BaseException) -> str:
    if isinstance(err, KeyError) and len(err.args) == 1:
        return str(err.args[0])  # without the quotes str(KeyError) adds
    return str(err)


def _rewrap(err: Exception, message: str) -> Exception:
    """The same kind of error with ``message`` (a RuntimeError when it cannot be made)."""
    try:
        new = type(err)(message)
    except Exception:
        return RuntimeError(message)
    return new if str(new) == message or isinstance(new, KeyError) else RuntimeError(message)


class term_errors:
    """Context manager: an error inside starts with ``distill term 'NAME' (s -> t): ``."""

    def __init__(self, spec: dict):
        self.spec = spec

    def __enter__(self):
        return self

    def __exit__(self, exc_type, err, tb):
        if err is None or not isinstance(err, Exception):
            return False
        name = self.spec.get('name')
        prefix = f'distill term {name!r} ({self.spec.get("student")} -> ' \
                 f'{self.spec.get("teacher")})'
        message = _message(err)
        if message.startswith(prefix):
            return False
        own = f'distill term {name!r}: '  # DistillTerm's own prefix
        if message.startswith(own):
            message = message[len(own):]
        raise _rewrap(err, f'{prefix}: {message}') from err


def _scale(value, factor: float):
    if isinstance(value, (list, tuple)):
        return type(value)(v * factor for v in value)
    return value * factor
