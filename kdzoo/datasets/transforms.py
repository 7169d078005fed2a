"""Data-pipeline steps that mmcv does not provide (registered in kdzoo's ``TRANSFORMS``).

**How configs name transforms.** mmcv 2.x registers its transforms (``LoadImageFromFile``,
``RandomFlip``, ``CenterCrop``, ``Resize``, ``RandomResize``, ``Normalize``, ``Pad``, ...)
directly into MMEngine's *root* ``TRANSFORMS`` registry (``mmcv.transforms.builder``
re-exports ``mmengine.registry.TRANSFORMS``), and importing this module imports
``mmcv.transforms``. kdzoo's ``TRANSFORMS`` is a child of that root, so with
``default_scope='kdzoo'`` (the Runner's default scope, or
``mmengine.registry.init_default_scope('kdzoo')``) every step can be named plainly::

    pipeline = [dict(type='RandomCropPad', size=32, padding=4),   # kdzoo
                dict(type='RandomFlip', prob=0.5),                 # mmcv, via the root
                dict(type='PackClsInputs')]                        # kdzoo

A lookup of a plain name searches kdzoo's registry, then its parent (the root, where
mmcv's steps are). ``'mmcv.RandomFlip'`` also works (it is resolved as the import path
``mmcv.RandomFlip``), as does ``'kdzoo.RandomCropPad'`` from any scope. Without a kdzoo
default scope, datasets build their pipeline from the root registry and find mmcv's steps
but not kdzoo's unless spelled ``'kdzoo.<Name>'``.

Random steps draw from numpy's global RNG only; with a ``SeededSampler`` the datasets seed
it per (run seed, epoch, sample index), see :mod:`kdzoo.datasets.seeding`.
"""
import math
from numbers import Number
from typing import Sequence, Tuple, Union

import mmcv
import mmcv.transforms  # noqa: F401  (registers mmcv's steps in the root registry)
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from kdzoo.registry import TRANSFORMS


def _to_hw(size: Union[int, Sequence[int]], name: str = 'size') -> Tuple[int, int]:
    """``int`` -> ``(s, s)``; a pair is read as ``(h, w)``."""
    if isinstance(size, Number):
        size = (int(size), int(size))
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f'{name} must be a positive int or an (h, w) pair, got {size}')
    return size


def _keep_channels(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """cv2 drops a trailing channel axis of size 1; put it back."""
    if like.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def _set_img(results: dict, img: np.ndarray) -> dict:
    results['img'] = img
    results['img_shape'] = img.shape[:2]
    return results


@TRANSFORMS.register_module()
class RandomCropPad(BaseTransform):
    """CIFAR-style augmentation: pad every side by ``padding``, then crop ``size`` at random.

    Args:
        size (int | (h, w)): Output size.
        padding (int): Pixels added on each side before cropping. Defaults to 4.
        pad_val (int | float): Fill value of the padding. Defaults to 0.

    With ``padding=0`` and ``size`` equal to the image size this is the identity.
    """

    def __init__(self, size: Union[int, Sequence[int]], padding: int = 4,
                 pad_val: Union[int, float] = 0) -> None:
        self.size = _to_hw(size)
        if padding < 0:
            raise ValueError(f'padding must be >= 0, got {padding}')
        self.padding = int(padding)
        self.pad_val = pad_val

    def transform(self, results: dict) -> dict:
        img = results['img']
        p = self.padding
        if p:
            pad = ((p, p), (p, p)) + ((0, 0),) * (img.ndim - 2)
            img = np.pad(img, pad, mode='constant', constant_values=self.pad_val)
        h, w = img.shape[:2]
        th, tw = self.size
        if th > h or tw > w:
            raise ValueError(f'RandomCropPad: crop {self.size} larger than the padded image '
                             f'{(h, w)}')
        top = np.random.randint(0, h - th + 1)
        left = np.random.randint(0, w - tw + 1)
        return _set_img(results, np.ascontiguousarray(img[top:top + th, left:left + tw]))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, padding={self.padding}, '
                f'pad_val={self.pad_val})')


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """Inception-style crop: a random area/aspect crop resized to ``size``.

    Follows torchvision's sampling: up to 10 tries of an area fraction drawn uniformly from
    ``scale`` and an aspect ratio (w/h) drawn log-uniformly from ``ratio``; if none fits,
    the central crop with the aspect ratio clipped to ``ratio``.

    Args:
        size (int | (h, w)): Output size.
        scale (tuple): Range of the crop's area fraction. Defaults to ``(0.08, 1.0)``.
        ratio (tuple): Range of the crop's aspect ratio w/h. Defaults to ``(3/4, 4/3)``.
        interpolation (str): mmcv/cv2 interpolation name. Defaults to ``'bilinear'``.
        max_attempts (int): Tries before the fallback. Defaults to 10.
    """

    def __init__(self, size: Union[int, Sequence[int]],
                 scale: Tuple[float, float] = (0.08, 1.0),
                 ratio: Tuple[float, float] = (3. / 4., 4. / 3.),
                 interpolation: str = 'bilinear', max_attempts: int = 10) -> None:
        self.size = _to_hw(size)
        if not (0 < scale[0] <= scale[1]) or not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f'bad scale {scale} or ratio {ratio}')
        self.scale = tuple(float(s) for s in scale)
        self.ratio = tuple(float(r) for r in ratio)
        self.interpolation = interpolation
        self.max_attempts = int(max_attempts)

    def get_params(self, h: int, w: int) -> Tuple[int, int, int, int]:
        """Return ``(top, left, crop_h, crop_w)``."""
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(self.max_attempts):
            target_area = area * np.random.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(np.random.uniform(log_ratio[0], log_ratio[1]))
            cw = int(round(math.sqrt(target_area * aspect)))
            ch = int(round(math.sqrt(target_area / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                top = np.random.randint(0, h - ch + 1)
                left = np.random.randint(0, w - cw + 1)
                return top, left, ch, cw
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            cw, ch = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            ch, cw = h, int(round(h * self.ratio[1]))
        else:
            cw, ch = w, h
        ch, cw = max(1, min(ch, h)), max(1, min(cw, w))
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        top, left, ch, cw = self.get_params(h, w)
        crop = img[top:top + ch, left:left + cw]
        out = mmcv.imresize(np.ascontiguousarray(crop), (self.size[1], self.size[0]),
                            interpolation=self.interpolation, backend='cv2')
        return _set_img(results, _keep_channels(out, img))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, scale={self.scale}, '
                f'ratio={self.ratio}, interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class ResizeShorter(BaseTransform):
    """Resize so that the shorter side equals ``size``, keeping the aspect ratio.

    The usual ImageNet evaluation is ``ResizeShorter(256)`` then mmcv's
    ``CenterCrop(crop_size=224)``.

    Args:
        size (int): Target length of the shorter side.
        interpolation (str): mmcv/cv2 interpolation name. Defaults to ``'bilinear'``.
    """

    def __init__(self, size: int, interpolation: str = 'bilinear') -> None:
        if int(size) <= 0:
            raise ValueError(f'size must be positive, got {size}')
        self.size = int(size)
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        if min(h, w) == self.size:
            return _set_img(results, img)
        if h <= w:
            nh, nw = self.size, max(1, int(round(w * self.size / h)))
        else:
            nw, nh = self.size, max(1, int(round(h * self.size / w)))
        out = mmcv.imresize(img, (nw, nh), interpolation=self.interpolation, backend='cv2')
        results['scale_factor'] = (nw / w, nh / h)
        return _set_img(results, _keep_channels(out, img))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, '
                f'interpolation={self.interpolation!r})')


@TRANSFORMS.register_module()
class BGR2RGB(BaseTransform):
    """Reverse the channel order of a 3-channel ``img`` (mmcv's ``LoadImageFromFile`` gives
    BGR; the CIFAR/Fashion-MNIST datasets give RGB/grey). Other images pass unchanged."""

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 3 and img.shape[2] == 3:
            results['img'] = np.ascontiguousarray(img[..., ::-1])
        return results


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """Pack a classification sample as ``dict(inputs, data_samples)``.

    ``inputs`` is a ``(C, H, W)`` tensor of the image's dtype (uint8 from the datasets;
    normalisation belongs to the model's data preprocessor); grey ``(H, W)`` or
    ``(H, W, 1)`` images become ``(1, H, W)``. ``data_samples`` is
    ``dict(gt_label=torch.tensor(label, dtype=torch.long))`` (a 0-d tensor), plus the
    ``meta_keys`` found in ``results``.

    With ``collate_fn=dict(type='default_collate')`` a batch becomes
    ``dict(inputs=Tensor(N, C, H, W), data_samples=dict(gt_label=Tensor(N)))``.

    Args:
        meta_keys (sequence of str): Extra keys copied into ``data_samples`` when present
            (e.g. ``('sample_idx',)``). Defaults to none, so batches hold only labels.
    """

    def __init__(self, meta_keys: Sequence[str] = ()) -> None:
        self.meta_keys = tuple(meta_keys)

    @staticmethod
    def to_chw(img: np.ndarray) -> torch.Tensor:
        img = np.asarray(img)
        if img.ndim == 2:
            img = img[..., None]
        if img.ndim != 3:
            raise ValueError(f'PackClsInputs: expected an (H, W) or (H, W, C) image, got '
                             f'shape {img.shape}')
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))

    def transform(self, results: dict) -> dict:
        if 'img' not in results:
            raise KeyError('PackClsInputs: results have no "img" (add LoadImageFromFile '
                           'for path-based datasets)')
        data_samples = {}
        if 'gt_label' in results:
            data_samples['gt_label'] = torch.as_tensor(
                np.asarray(results['gt_label']).reshape(()).item(), dtype=torch.long)
        for key in self.meta_keys:
            if key in results:
                data_samples[key] = results[key]
        return dict(inputs=self.to_chw(results['img']), data_samples=data_samples)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'


__all__ = ['RandomCropPad', 'RandomResizedCrop', 'ResizeShorter', 'BGR2RGB', 'PackClsInputs']
