"""Real-format detection and segmentation sets built from real pixels.

Fashion-MNIST items (real 28x28 photographs of clothes) are scaled, tinted and pasted,
without overlap, onto textured canvases. Each item's mask is its own pixels above a grey
threshold, so boxes and masks are exact. Two on-disk formats are written, both read
*unchanged* by the OpenMMLab toolboxes:

* COCO instances (mmdet ``CocoDataset`` + ``CocoMetric``)::

    ROOT/annotations/instances_{train,val}.json   boxes [x, y, w, h], RLE masks, areas
    ROOT/{train,val}/<image id>.jpg

* Cityscapes fine annotations (mmseg ``CityscapesDataset`` + ``IoUMetric``)::

    ROOT/leftImg8bit/{train,val}/canvas/canvas_000000_<n>_leftImg8bit.png
    ROOT/gtFine/{train,val}/canvas/canvas_000000_<n>_gtFine_labelTrainIds.png

  mmseg's Cityscapes class only accepts subsets of the 19 Cityscapes classes, so trainId
  0 (its first class name, 'road') is the background and trainId ``k + 1`` holds
  Fashion-MNIST class ``k``: the configs pass the first 11 Cityscapes names as
  ``metainfo.classes`` (see :data:`CANVAS_SEG_CLASSES`); the file names and the label
  encoding are Cityscapes'.

The ``train`` canvases use items of Fashion-MNIST's training split and the ``val``
canvases items of its test split, so no item is shared. Everything is drawn from one
seeded generator per split: the same arguments give byte-identical files.
"""
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .fashion_mnist import FASHION_MNIST_CLASSES, FashionMNIST

# mmseg's CityscapesDataset.METAINFO['classes'][:11]: background + the 10 item classes.
CITYSCAPES_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
                      'traffic light', 'traffic sign', 'vegetation', 'terrain', 'sky',
                      'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
                      'bicycle')
CANVAS_SEG_CLASSES = CITYSCAPES_CLASSES[:len(FASHION_MNIST_CLASSES) + 1]
CITY = 'canvas'
IMG_SUFFIX = '_leftImg8bit.png'
SEG_SUFFIX = '_gtFine_labelTrainIds.png'
IGNORE_INDEX = 255
# An item pixel belongs to the item when its grey value is above this (of 255).
MASK_THRESHOLD = 24


@dataclass
class CanvasSpec:
    """How one split's canvases look.

    Args:
        num_images: canvases to write.
        height, width: canvas size in pixels.
        items: (min, max) items per canvas (fewer when no free place is found).
        scale: (min, max) side of a pasted item in pixels (square, from 28x28).
        background: (min, max) grey level of the coarse background texture.
    """
    num_images: int
    height: int = 128
    width: int = 128
    items: Tuple[int, int] = (1, 4)
    scale: Tuple[int, int] = (24, 56)
    background: Tuple[int, int] = (30, 140)


@dataclass
class PastedItem:
    label: int            # Fashion-MNIST class, 0..9
    box: Tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), tight around the mask
    mask: np.ndarray      # (H, W) bool over the whole canvas


def _background(rng: np.random.Generator, height: int, width: int,
                levels: Tuple[int, int]) -> np.ndarray:
    """A smooth colour texture (4x4 random colours upsampled bicubically) plus grain."""
    coarse = rng.uniform(levels[0], levels[1], size=(4, 4, 3)).astype(np.float32)
    texture = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize(
        (width, height), Image.BICUBIC), dtype=np.float32)
    grain = rng.normal(0, 8, size=(height, width, 3)).astype(np.float32)
    return np.clip(texture + grain, 0, 255)


def _free_place(rng, occupied: np.ndarray, side: int, tries: int = 20) -> Optional[Tuple]:
    height, width = occupied.shape
    if side >= min(height, width):
        return None
    for _ in range(tries):
        y = int(rng.integers(0, height - side + 1))
        x = int(rng.integers(0, width - side + 1))
        if not occupied[y:y + side, x:x + side].any():
            return x, y
    return None


def render_canvas(rng: np.random.Generator, spec: CanvasSpec, images: np.ndarray,
                  labels: np.ndarray) -> Tuple[np.ndarray, List[PastedItem]]:
    """One canvas (uint8 HxWx3) and its items, drawn from ``rng``."""
    canvas = _background(rng, spec.height, spec.width, spec.background)
    occupied = np.zeros((spec.height, spec.width), dtype=bool)
    items = []
    for _ in range(int(rng.integers(spec.items[0], spec.items[1] + 1))):
        idx = int(rng.integers(0, len(images)))
        side = int(rng.integers(spec.scale[0], spec.scale[1] + 1))
        place = _free_place(rng, occupied, side)
        tint = rng.uniform(0.35, 1.0, size=3).astype(np.float32)
        if place is None:
            continue
        x, y = place
        grey = np.asarray(Image.fromarray(images[idx]).resize((side, side), Image.BILINEAR),
                          dtype=np.float32)
        local = grey > MASK_THRESHOLD
        if local.sum() < 4:
            continue
        region = canvas[y:y + side, x:x + side]
        region[local] = grey[local, None] * tint
        mask = np.zeros_like(occupied)
        mask[y:y + side, x:x + side] = local
        ys, xs = np.nonzero(mask)
        items.append(PastedItem(int(labels[idx]),
                                (int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                                 int(ys.max()) + 1), mask))
        # The whole square is taken, so later items never touch this one's box.
        occupied[y:y + side, x:x + side] = True
    return np.clip(canvas, 0, 255).astype(np.uint8), items


def _source(split: str, data_root: Optional[str]) -> Tuple[np.ndarray, np.ndarray]:
    fmnist_split = 'train' if split == 'train' else 'test'
    images, labels = FashionMNIST(split=fmnist_split, data_root=data_root,
                                  lazy_init=True).load_arrays()
    return images, labels


def _split_seed(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, {'train': 0, 'val': 1}[split]])


def _canvases(split: str, spec: CanvasSpec, seed: int, fmnist_root: Optional[str]):
    if split not in ('train', 'val'):
        raise ValueError(f"canvas split must be 'train' or 'val', got {split!r}")
    images, labels = _source(split, fmnist_root)
    rng = _split_seed(seed, split)
    for n in range(spec.num_images):
        yield n, render_canvas(rng, spec, images, labels)


def write_coco(root: str, split: str, spec: CanvasSpec, seed: int = 0,
               fmnist_root: Optional[str] = None, progress=None) -> str:
    """Write ``root/{split}/*.jpg`` and ``root/annotations/instances_{split}.json``."""
    from pycocotools import mask as mask_utils

    img_dir = osp.join(root, split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    coco: Dict[str, list] = dict(
        images=[], annotations=[],
        categories=[dict(id=k + 1, name=name, supercategory='fashion')
                    for k, name in enumerate(FASHION_MNIST_CLASSES)])
    for n, (canvas, items) in _canvases(split, spec, seed, fmnist_root):
        image_id = n + 1
        file_name = f'{image_id:06d}.jpg'
        Image.fromarray(canvas).save(osp.join(img_dir, file_name), quality=95)
        coco['images'].append(dict(id=image_id, file_name=file_name,
                                   height=spec.height, width=spec.width))
        for item in items:
            rle = mask_utils.encode(np.asfortranarray(item.mask.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode('ascii')
            x0, y0, x1, y1 = item.box
            coco['annotations'].append(dict(
                id=len(coco['annotations']) + 1, image_id=image_id,
                category_id=item.label + 1, bbox=[x0, y0, x1 - x0, y1 - y0],
                area=int(item.mask.sum()), segmentation=rle, iscrowd=0))
        if progress is not None:
            progress()
    ann_file = osp.join(root, 'annotations', f'instances_{split}.json')
    with open(ann_file, 'w') as f:
        json.dump(coco, f)
    return ann_file


def cityscapes_stem(n: int) -> str:
    return f'{CITY}_000000_{n:06d}'


def write_cityscapes(root: str, split: str, spec: CanvasSpec, seed: int = 0,
                     fmnist_root: Optional[str] = None, progress=None) -> List[str]:
    """Write ``leftImg8bit`` images and ``gtFine`` ``labelTrainIds`` maps for ``split``."""
    img_dir = osp.join(root, 'leftImg8bit', split, CITY)
    seg_dir = osp.join(root, 'gtFine', split, CITY)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(seg_dir, exist_ok=True)
    stems = []
    for n, (canvas, items) in _canvases(split, spec, seed, fmnist_root):
        label = np.zeros((spec.height, spec.width), dtype=np.uint8)  # 0: background
        for item in items:
            label[item.mask] = item.label + 1
        stem = cityscapes_stem(n)
        Image.fromarray(canvas).save(osp.join(img_dir, stem + IMG_SUFFIX))
        Image.fromarray(label).save(osp.join(seg_dir, stem + SEG_SUFFIX))
        stems.append(stem)
        if progress is not None:
            progress()
    return stems


def write_canvas_sets(root: str, fmt: str, splits: Sequence[Tuple[str, CanvasSpec]],
                      seed: int = 0, fmnist_root: Optional[str] = None,
                      progress=None) -> None:
    """Write every ``(split, spec)`` in format ``fmt`` (``'coco'`` or ``'cityscapes'``)."""
    writers = dict(coco=write_coco, cityscapes=write_cityscapes)
    if fmt not in writers:
        raise ValueError(f'unknown canvas format {fmt!r}; valid: {sorted(writers)}')
    for split, spec in splits:
        writers[fmt](root, split, spec, seed=seed, fmnist_root=fmnist_root,
                     progress=progress)


__all__ = ['CanvasSpec', 'render_canvas', 'write_coco', 'write_cityscapes',
           'write_canvas_sets', 'CANVAS_SEG_CLASSES', 'IMG_SUFFIX', 'SEG_SUFFIX',
           'cityscapes_stem']
