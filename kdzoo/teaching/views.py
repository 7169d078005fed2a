"""The view steps of the teaching modes: each view is cut from the raw image.

A view is ``(region, flip)`` drawn from ``numpy.random.default_rng(seed)``, then the region resized to the
view's output size. The draws depend only on the raw image's size and the view's crop
parameters, never on the output size: two views drawn with one seed cover the same region
whatever their resolutions (a 384-px teacher and a 224-px student see the same crop, the
teacher's with more detail). A view is a pure function of ``(raw image, spec, seed)``;
the datasets derive the seeds with :func:`kdzoo.datasets.sample_seed`.
"""
import math
from typing import Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from kdzoo.registry import TRANSFORMS
from .modes import ViewSpec

#: The view kinds (see :mod:`kdzoo.teaching.modes`).
VIEW_KINDS = ('resize', 'cc', 'rc', 'ic')

_LOG_RATIO = (math.log(3. / 4.), math.log(4. / 3.))


def mild_crop_region(rng: np.random.Generator, h: int, w: int, fraction: float) -> Tuple[int, int, int, int]:
    """BiT's mild random crop (resize to 256, random 224 crop) as a region of the raw image:
    ``fraction`` of each side at a uniformly random place. ``(top, left, height, width)``."""
    ch, cw = max(1, int(round(h * fraction))), max(1, int(round(w * fraction)))
    return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw


def centre_crop_region(h: int, w: int, fraction: float) -> Tuple[int, int, int, int]:
    """The mild crop's region at the centre (the fixed teacher of ``fix/cc``)."""
    ch, cw = max(1, int(round(h * fraction))), max(1, int(round(w * fraction)))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def inception_crop_region(rng: np.random.Generator, h: int, w: int, scale: Tuple[float, float],
                          attempts: int = 10) -> Tuple[int, int, int, int]:
    """The inception crop: area fraction ~ U(scale), aspect ratio w/h log-uniform in
    [3/4, 4/3], 10 tries, else the whole image (torchvision's ``RandomResizedCrop`` and
    big_vision's ``inception_crop`` sample alike)."""
    area = h * w
    for _ in range(attempts):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*_LOG_RATIO))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return (int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch,
                    cw)
    return 0, 0, h, w


def draw_view(rng: np.random.Generator, spec: ViewSpec, h: int, w: int) -> Tuple[Tuple[int, int, int, int], bool]:
    """The random part of a view: its region of an ``h x w`` raw image and its flip."""
    if spec.kind == 'resize':
        return (0, 0, h, w), False
    if spec.kind == 'cc':
        return centre_crop_region(h, w, spec.crop_fraction), False
    if spec.kind == 'rc':
        region = mild_crop_region(rng, h, w, spec.crop_fraction)
    elif spec.kind == 'ic':
        region = inception_crop_region(rng, h, w, spec.inception_scale)
    else:
        raise ValueError(f'unknown view kind {spec.kind!r}; valid: {", ".join(VIEW_KINDS)}')
    flip = bool(spec.flip and rng.random() < 0.5)
    return region, flip


def cut_view(img: np.ndarray, region, flip: bool, spec: ViewSpec) -> np.ndarray:
    """Cut ``region`` of ``img``, resize it to ``spec.size`` and flip it if ``flip``."""
    top, left, ch, cw = region
    crop = np.ascontiguousarray(img[top:top + ch, left:left + cw])
    out_h, out_w = spec.size
    if (ch, cw) != (out_h, out_w):
        out = mmcv.imresize(crop, (out_w, out_h), interpolation=spec.interpolation,
                            backend='cv2')
        if crop.ndim == 3 and out.ndim == 2:  # cv2 drops a channel axis of size 1
            out = out[..., None]
    else:
        out = crop
    if flip:
        out = np.ascontiguousarray(out[:, ::-1])
    return out


def make_view(img: np.ndarray, spec: ViewSpec, seed: int) -> np.ndarray:
    """The view ``spec`` of the raw ``img`` drawn with ``seed`` (a pure function)."""
    h, w = img.shape[:2]
    region, flip = draw_view(np.random.default_rng(int(seed)), spec, h, w)
    return cut_view(img, region, flip, spec)




@TRANSFORMS.register_module()
class TeachingView(BaseTransform):
    """A teaching view as an ordinary pipeline step, e.g. a student trained alone on the
    same augmentation as a FunMatch student::

        dict(type='TeachingView', kind='ic', size=224)   # inception crop + flip
        dict(type='TeachingView', kind='rc', size=224)   # BiT's mild random crop + flip

    The view's seed is drawn from numpy's global RNG, which kdzoo's datasets seed per
    sample (:mod:`kdzoo.datasets.seeding`), so the step replays like any other.

    Args:
        kind: ``resize``, ``cc`` (centre crop), ``rc`` (mild random crop) or ``ic``
            (inception crop).
        size: output size (int or (h, w)).
        crop_fraction, inception_scale, flip, interpolation: see
            :class:`~kdzoo.teaching.Teaching`.
    """

    def __init__(self, kind: str, size, crop_fraction: float = 0.875,
                 inception_scale: Tuple[float, float] = (0.08, 1.0), flip: bool = True,
                 interpolation: str = 'bilinear'):
        if kind not in VIEW_KINDS:
            raise ValueError(f'TeachingView kind={kind!r}; valid: {", ".join(VIEW_KINDS)}')
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        self.spec = ViewSpec(kind=kind, size=(int(h), int(w)), crop_fraction=crop_fraction,
                             inception_scale=tuple(inception_scale), flip=flip,
                             interpolation=interpolation)

    def transform(self, results: dict) -> dict:
        img = results['img']
        view = make_view(img if img.ndim == 3 else img[..., None], self.spec,
                         int(np.random.randint(0, 2**63 - 1, dtype=np.int64)))
        results['img'] = view
        results['img_shape'] = view.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.spec})'


__all__ = ['VIEW_KINDS', 'mild_crop_region', 'centre_crop_region', 'inception_crop_region',
           'draw_view', 'cut_view', 'make_view', 'TeachingView']
