"""The teaching modes: what input the teacher sees, relative to the student's.

One config field selects a mode (``teaching=dict(mode=...)``); each mode is a pair of view
kinds (student's, teacher's) and the relation between their random draws, exactly as
FunMatch's card defines them (Beyer et al., CVPR 2022, section 3 and Fig. 3):

============  =================  ====================  ===================================
mode          student's view     teacher's view        relation
============  =================  ====================  ===================================
fix/rs        resize             resize                fixed (teacher outputs precomputable)
fix/cc        mild random crop   centre crop           fixed
fix/ic_ens    inception crop     mean over K inception fixed (K = ``ens_crops``)
                                 crops
ind/rc        mild random crop   mild random crop      independent draws
ind/ic        inception crop     inception crop        independent draws
same/rc       mild random crop   the same crop         one draw, fed to both
same/ic       inception crop     the same crop         one draw, fed to both
funmatch      inception crop     the same crop         one draw, then mixup within the
                                                       batch; the same mixed image to both
============  =================  ====================  ===================================

View kinds (:mod:`kdzoo.teaching.views`): ``resize`` is the whole image resized; ``rc``,
BiT's "mild" random crop, a region of ``crop_fraction`` (224/256) of each side at a
random place, plus a random horizontal flip; ``cc`` the same region at the centre, no
flip; ``ic``, the "heavy" inception crop, a region of a random area fraction in
``inception_scale`` and aspect ratio in [3/4, 4/3], plus a random flip. Every view is cut
from the raw image and resized to its output size, so a teacher at ``teacher_size``
(e.g. 384 against the student's 224) sees the same region at its own resolution.
"""
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

from kdzoo.utils.config_keys import check_keys

#: mode -> (student's view kind, teacher's view kind, relation of their draws)
MODES = {
    'fix/rs': ('resize', 'resize', 'fixed'),
    'fix/cc': ('rc', 'cc', 'fixed'),
    'fix/ic_ens': ('ic', 'ic', 'ensemble'),
    'ind/rc': ('rc', 'rc', 'independent'),
    'ind/ic': ('ic', 'ic', 'independent'),
    'same/rc': ('rc', 'rc', 'same'),
    'same/ic': ('ic', 'ic', 'same'),
    'funmatch': ('ic', 'ic', 'same'),
}

TEACHING_KEYS = ('mode', 'size', 'teacher_size', 'crop_fraction', 'inception_scale', 'flip',
                 'ens_crops', 'mixup_alpha', 'interpolation', 'store')


def _hw(value, name: str) -> Tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f'teaching.{name}={value!r}: give an int or an (h, w) pair') from None
    if h <= 0 or w <= 0:
        raise ValueError(f'teaching.{name}={value!r} must be positive')
    return h, w


@dataclass(frozen=True)
class ViewSpec:
    """One view: its kind, output size and the parameters of its random steps. Two views
    with equal specs but for ``size`` cover the same region when drawn with one seed."""
    kind: str
    size: Tuple[int, int]
    crop_fraction: float = 0.875
    inception_scale: Tuple[float, float] = (0.08, 1.0)
    flip: bool = True
    interpolation: str = 'bilinear'

    def as_dict(self) -> dict:
        d = asdict(self)
        d['size'] = list(self.size)
        d['inception_scale'] = list(self.inception_scale)
        return d


@dataclass(frozen=True)
class Teaching:
    """A validated ``teaching=dict(...)``.

    Args:
        mode: one of :data:`MODES`.
        size: the student's view size (int or (h, w)).
        teacher_size: the teacher's view size; defaults to ``size``.
        crop_fraction: side fraction of the mild random crop and the centre crop
            (BiT: 224 of 256).
        inception_scale: area fraction range of the inception crop.
        flip: random horizontal flip in ``rc`` and ``ic`` views.
        ens_crops: K, the crops averaged by ``fix/ic_ens`` (the card: 1k on ImageNet).
        mixup_alpha: ``funmatch`` only: mixing coefficients ~ Beta(alpha, alpha), one per
            batch, each image mixed with its neighbour in the batch (big_vision's mixup with
            ``p=alpha, n=2``; FunMatch's "aggressive" default is alpha=1, i.e. uniform).
        interpolation: cv2 interpolation of the resizes.
        store: a teacher store directory (:mod:`kdzoo.teaching.store`): the teacher's
            outputs are read from it and no teacher runs.
    """
    mode: str
    size: Tuple[int, int]
    teacher_size: Tuple[int, int]
    crop_fraction: float = 0.875
    inception_scale: Tuple[float, float] = (0.08, 1.0)
    flip: bool = True
    ens_crops: int = 8
    mixup_alpha: Optional[float] = None
    interpolation: str = 'bilinear'
    store: Optional[str] = None

    @classmethod
    def from_cfg(cls, cfg) -> 'Teaching':
        if isinstance(cfg, Teaching):
            return cfg
        cfg = dict(cfg or {})
        check_keys(cfg, TEACHING_KEYS, 'teaching')
        mode = cfg.get('mode')
        if mode not in MODES:
            raise ValueError(f'teaching.mode={mode!r} is not a teaching mode; valid: '
                             f'{", ".join(MODES)}')
        if 'size' not in cfg:
            raise KeyError("teaching needs the key 'size' (the student's view size, e.g. "
                           "size=224)")
        size = _hw(cfg['size'], 'size')
        teacher_size = _hw(cfg.get('teacher_size') or size, 'teacher_size')
        fraction = float(cfg.get('crop_fraction', 0.875))
        if not 0 < fraction <= 1:
            raise ValueError(f'teaching.crop_fraction={fraction} must be in (0, 1]')
        scale = tuple(float(s) for s in cfg.get('inception_scale', (0.08, 1.0)))
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f'teaching.inception_scale={scale} must be (lo, hi) with '
                             f'0 < lo <= hi <= 1')
        ens = int(cfg.get('ens_crops', 8))
        if ens < 1:
            raise ValueError(f'teaching.ens_crops={ens} must be >= 1')
        alpha = cfg.get('mixup_alpha')
        if mode == 'funmatch':
            alpha = 1.0 if alpha is None else float(alpha)
            if alpha <= 0:
                raise ValueError(f'teaching.mixup_alpha={alpha} must be > 0')
        elif alpha is not None:
            raise ValueError(f'teaching.mixup_alpha={alpha} is part of mode="funmatch" only '
                             f'(the mode is {mode!r})')
        store = cfg.get('store')
        if store is not None and mode == 'funmatch':
            raise ValueError('teaching.mode="funmatch" feeds the teacher images mixed within '
                             'each batch, which no store can hold: drop teaching.store (an '
                             'online teacher) or pick another mode, e.g. "same/ic"')
        return cls(mode=mode, size=size, teacher_size=teacher_size, crop_fraction=fraction,
                   inception_scale=scale, flip=bool(cfg.get('flip', True)), ens_crops=ens,
                   mixup_alpha=alpha, interpolation=str(cfg.get('interpolation', 'bilinear')),
                   store=None if store is None else str(store))

    @property
    def student_kind(self) -> str:
        return MODES[self.mode][0]

    @property
    def relation(self) -> str:
        """``fixed``, ``ensemble``, ``independent`` or ``same``."""
        return MODES[self.mode][2]

    def view(self, who: str) -> ViewSpec:
        """The student's or the teacher's :class:`ViewSpec`."""
        student, teacher, _ = MODES[self.mode]
        kind, size = (student, self.size) if who == 'student' else (teacher, self.teacher_size)
        return ViewSpec(kind=kind, size=size, crop_fraction=self.crop_fraction,
                        inception_scale=self.inception_scale, flip=self.flip,
                        interpolation=self.interpolation)

    @property
    def teacher_sees_student_batch(self) -> bool:
        """True when the teacher's input is exactly the student's (no view of its own)."""
        return self.relation == 'same' and self.teacher_size == self.size

    def as_dict(self) -> dict:
        d = dict(mode=self.mode, size=list(self.size), teacher_size=list(self.teacher_size),
                 crop_fraction=self.crop_fraction,
                 inception_scale=list(self.inception_scale), flip=self.flip,
                 ens_crops=self.ens_crops, interpolation=self.interpolation)
        if self.mixup_alpha is not None:
            d['mixup_alpha'] = self.mixup_alpha
        return d


def describe_teaching(teaching: Teaching) -> str:
    """One line for the start-up summary."""
    student, teacher, relation = MODES[teaching.mode]
    words = {'same': 'the same view as the student', 'independent': 'its own random view',
             'fixed': 'a fixed view', 'ensemble': f'the mean of {teaching.ens_crops} fixed '
                                                   f'crops'}[relation]
    line = (f'teaching mode {teaching.mode!r}: {words} ({teacher}, '
            f'{teaching.teacher_size[0]}x{teaching.teacher_size[1]}); the student sees '
            f'{student}, {teaching.size[0]}x{teaching.size[1]}')
    if teaching.mixup_alpha:
        line += f'; mixup lam ~ Beta({teaching.mixup_alpha}, {teaching.mixup_alpha})'
    if teaching.store:
        line += f'; outputs from the store {teaching.store}'
    return line


__all__ = ['MODES', 'TEACHING_KEYS', 'Teaching', 'ViewSpec', 'describe_teaching']
