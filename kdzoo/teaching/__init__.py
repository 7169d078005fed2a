"""The teaching layer: what input the teacher sees, and where its outputs come from.

- :mod:`~kdzoo.teaching.modes`: FunMatch's eight teaching modes, one config field
  (``teaching=dict(mode=...)``), and the view each mode gives the student and the teacher.
- :mod:`~kdzoo.teaching.views`: the views, cut from the raw image (mild random crop,
  centre crop, inception crop, resize), seeded, at each side's own resolution.
- :mod:`~kdzoo.teaching.dataset`: ``TeachingDataset``, the views of one raw image.
- :mod:`kdzoo.models.sources`: the teacher's outputs from an online model or a store.
- :mod:`~kdzoo.teaching.store` and :mod:`~kdzoo.teaching.build`: the offline teacher store
  (Auto-KD), aligned with augmentation by replayable views.
- :mod:`~kdzoo.teaching.config`: a config's ``teaching`` applied to model and data.

Mixup (``funmatch``) is batch-level: the distiller's data preprocessor does it.
"""
from .config import apply_teaching
from .dataset import FIXED_EPOCH, STORE_EPOCH, TeachingDataset, pick_replay
from .modes import MODES, Teaching, ViewSpec, describe_teaching
from .store import StoreMismatch, TeacherStore
from .views import TeachingView

__all__ = ['MODES', 'Teaching', 'ViewSpec', 'describe_teaching', 'TeachingDataset',
           'pick_replay', 'FIXED_EPOCH', 'STORE_EPOCH', 'TeacherStore', 'StoreMismatch',
           'apply_teaching', 'TeachingView']
