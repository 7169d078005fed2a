"""The canvas detection / segmentation sets: real formats read by the toolboxes unchanged.

Tiny sets are written from the tests' small Fashion-MNIST (IDX files); pycocotools, mmdet's
CocoDataset + CocoMetric and mmseg's CityscapesDataset + IoUMetric read and score them.
"""
import filecmp
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from kdzoo.datasets.canvas import (CANVAS_SEG_CLASSES, IMG_SUFFIX, SEG_SUFFIX, CanvasSpec,
                                   write_canvas_sets, write_cityscapes, write_coco)
from kdzoo.datasets.fashion_mnist import FASHION_MNIST_CLASSES

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SPEC = CanvasSpec(num_images=6, height=64, width=96, items=(2, 3), scale=(14, 28))


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory, fmnist_root):
    root = str(tmp_path_factory.mktemp('canvas_coco'))
    write_canvas_sets(root, 'coco', [('train', SPEC), ('val', SPEC)], seed=3,
                      fmnist_root=fmnist_root)
    return root


@pytest.fixture(scope='module')
def cityscapes_root(tmp_path_factory, fmnist_root):
    root = str(tmp_path_factory.mktemp('canvas_cityscapes'))
    write_canvas_sets(root, 'cityscapes', [('train', SPEC), ('val', SPEC)], seed=3,
                      fmnist_root=fmnist_root)
    return root


def test_pycocotools_reads_exact_boxes_masks_and_areas(coco_root):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    coco = COCO(osp.join(coco_root, 'annotations', 'instances_train.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(FASHION_MNIST_CLASSES)
    assert len(coco.getImgIds()) == SPEC.num_images
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= SPEC.num_images
    for ann in anns:
        mask = mask_utils.decode(ann['segmentation']).astype(bool)
        ys, xs = np.nonzero(mask)
        x0, y0, w, h = ann['bbox']
        assert (x0, y0, x0 + w, y0 + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert ann['area'] == mask.sum() and 1 <= ann['category_id'] <= 10
        img = coco.loadImgs(ann['image_id'])[0]
        assert Image.open(osp.join(coco_root, 'train', img['file_name'])).size == (96, 64)
    # items never overlap: no pixel belongs to two masks of one image
    for img_id in coco.getImgIds():
        masks = [mask_utils.decode(a['segmentation']) for a in
                 coco.loadAnns(coco.getAnnIds(imgIds=img_id))]
        assert np.sum(masks, axis=0).max() <= 1


def test_same_arguments_same_files_other_seed_other_files(tmp_path, fmnist_root, coco_root):
    again = str(tmp_path / 'again')
    write_coco(again, 'train', SPEC, seed=3, fmnist_root=fmnist_root)
    assert filecmp.cmp(osp.join(again, 'annotations', 'instances_train.json'),
                       osp.join(coco_root, 'annotations', 'instances_train.json'),
                       shallow=False)
    assert filecmp.cmp(osp.join(again, 'train', '000001.jpg'),
                       osp.join(coco_root, 'train', '000001.jpg'), shallow=False)
    other = str(tmp_path / 'other')
    write_coco(other, 'train', SPEC, seed=4, fmnist_root=fmnist_root)
    assert not filecmp.cmp(osp.join(other, 'annotations', 'instances_train.json'),
                           osp.join(coco_root, 'annotations', 'instances_train.json'),
                           shallow=False)


def _coco_metric(coco_root, predict):
    """mmdet's CocoMetric (bbox) over the val split, with ``predict(anns)`` as detections."""
    from mmdet.evaluation import CocoMetric
    from pycocotools.coco import COCO

    ann_file = osp.join(coco_root, 'annotations', 'instances_val.json')
    metric = CocoMetric(ann_file=ann_file, metric='bbox')
    metric.dataset_meta = dict(classes=FASHION_MNIST_CLASSES)
    coco = COCO(ann_file)
    samples = []
    for img_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        boxes, labels = predict(anns)
        samples.append(dict(img_id=img_id, ori_shape=(SPEC.height, SPEC.width),
                            pred_instances=dict(bboxes=torch.tensor(boxes).reshape(-1, 4),
                                                scores=torch.ones(len(boxes)),
                                                labels=torch.tensor(labels))))
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def _xyxy(ann, shift=0):
    x, y, w, h = ann['bbox']
    return [x + shift, y, x + w + shift, y + h]


def test_mmdet_coco_dataset_and_metric_read_it_unchanged(coco_root):
    from mmdet.datasets import CocoDataset
    from mmdet.utils import register_all_modules
    register_all_modules()

    dataset = CocoDataset(data_root=coco_root, ann_file='annotations/instances_train.json',
                          data_prefix=dict(img='train/'),
                          metainfo=dict(classes=FASHION_MNIST_CLASSES),
                          pipeline=[dict(type='LoadImageFromFile'),
                                    dict(type='LoadAnnotations', with_bbox=True,
                                         with_mask=True),
                                    dict(type='PackDetInputs')])
    assert len(dataset) == SPEC.num_images
    sample = dataset[0]['data_samples']
    assert sample.gt_instances.masks.masks.shape[1:] == (SPEC.height, SPEC.width)
    assert len(sample.gt_instances.bboxes) == len(sample.gt_instances.labels) >= 1

    perfect = _coco_metric(coco_root, lambda anns: (
        [_xyxy(a) for a in anns], [a['category_id'] - 1 for a in anns]))
    assert perfect['bbox_mAP'] == pytest.approx(1.0)
    shifted = _coco_metric(coco_root, lambda anns: (
        [_xyxy(a, shift=0.4 * a['bbox'][2]) for a in anns],
        [a['category_id'] - 1 for a in anns]))
    assert shifted['bbox_mAP'] < 0.9
    wrong_class = _coco_metric(coco_root, lambda anns: (
        [_xyxy(a) for a in anns], [a['category_id'] % 10 for a in anns]))
    assert wrong_class['bbox_mAP'] == pytest.approx(0.0)


def test_cityscapes_file_names_use_mmseg_suffixes(cityscapes_root):
    from mmseg.datasets import CityscapesDataset
    signature = CityscapesDataset.__init__.__defaults__
    assert IMG_SUFFIX in signature and SEG_SUFFIX in signature
    for split in ('train', 'val'):
        imgs = sorted(os.listdir(osp.join(cityscapes_root, 'leftImg8bit', split, 'canvas')))
        segs = sorted(os.listdir(osp.join(cityscapes_root, 'gtFine', split, 'canvas')))
        assert len(imgs) == len(segs) == SPEC.num_images
        assert [i[:-len(IMG_SUFFIX)] for i in imgs] == [s[:-len(SEG_SUFFIX)] for s in segs]
        assert all(i.endswith(IMG_SUFFIX) for i in imgs)


def test_segmentation_labels_equal_the_coco_masks_of_the_same_canvases(
        tmp_path, fmnist_root, cityscapes_root):
    """Both formats render the same canvases from one seed: the trainId map is background
    0 plus ``category_id`` (= class + 1) on every COCO mask."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    coco_dir = str(tmp_path / 'coco')
    write_coco(coco_dir, 'val', SPEC, seed=3, fmnist_root=fmnist_root)
    coco = COCO(osp.join(coco_dir, 'annotations', 'instances_val.json'))
    for n, img_id in enumerate(coco.getImgIds()):
        expected = np.zeros((SPEC.height, SPEC.width), dtype=np.uint8)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id)):
            expected[mask_utils.decode(ann['segmentation']).astype(bool)] = ann['category_id']
        label = np.asarray(Image.open(osp.join(
            cityscapes_root, 'gtFine', 'val', 'canvas',
            f'canvas_000000_{n:06d}{SEG_SUFFIX}')))
        np.testing.assert_array_equal(label, expected)


def test_mmseg_cityscapes_dataset_and_iou_metric_read_it_unchanged(cityscapes_root):
    from mmseg.datasets import CityscapesDataset
    from mmseg.evaluation import IoUMetric
    from mmseg.utils import register_all_modules
    register_all_modules()

    dataset = CityscapesDataset(
        data_root=cityscapes_root, metainfo=dict(classes=CANVAS_SEG_CLASSES),
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                  dict(type='PackSegInputs')])
    assert len(dataset) == SPEC.num_images
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dataset.metainfo
    perfect, background = [], []
    for i in range(len(dataset)):
        gt = dataset[i]['data_samples'].gt_sem_seg.data
        assert set(gt.unique().tolist()) <= set(range(len(CANVAS_SEG_CLASSES)))
        perfect.append(dict(pred_sem_seg=dict(data=gt.clone()), gt_sem_seg=dict(data=gt)))
        background.append(dict(pred_sem_seg=dict(data=torch.zeros_like(gt)),
                               gt_sem_seg=dict(data=gt)))
    metric.process({}, perfect)
    assert metric.compute_metrics(metric.results)['mIoU'] == pytest.approx(100.0)
    metric.results = []
    metric.process({}, background)
    assert metric.compute_metrics(metric.results)['mIoU'] < 50.0


def test_the_tool_writes_both_formats_and_refuses_bad_arguments(tmp_path, fmnist_root):
    tool = osp.join(ROOT, 'tools', 'dataset_converters', 'make_canvas_data.py')
    common = ['--train', '2', '--val', '1', '--height', '48', '--width', '48',
              '--scale', '12', '20', '--fmnist-root', fmnist_root, '--no-progress']
    out = subprocess.run([sys.executable, tool, 'cityscapes', str(tmp_path / 'cs')] + common,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert len(os.listdir(tmp_path / 'cs' / 'gtFine' / 'train' / 'canvas')) == 2
    bad = subprocess.run([sys.executable, tool, 'coco', str(tmp_path / 'c'), '--scale', '20',
                          '90', '--height', '64', '--width', '64', '--no-progress'],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and 'exceeds the canvas 64x64' in bad.stderr
    with pytest.raises(ValueError, match="valid: \\['cityscapes', 'coco'\\]"):
        write_canvas_sets(str(tmp_path / 'x'), 'voc', [('train', SPEC)])
    with pytest.raises(ValueError, match="'train' or 'val'"):
        write_cityscapes(str(tmp_path / 'y'), 'test', SPEC, fmnist_root=fmnist_root)
