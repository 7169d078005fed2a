"""Detection KD: the distiller's box context, FGD / PKD / CWD terms in real train steps, and
the detection configs (full COCO and the small canvas set) building their distillers.

Nothing is downloaded and no data set is read: teachers are random inits, batches are
random images with random boxes (mmdet's ``demo_mm_inputs``).
"""
import copy
import glob
import os.path as osp
import time

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from kdzoo.models import Distiller
from kdzoo.models.distiller import detection_context
from kdzoo.utils import register_all_modules

register_all_modules()

mmdet_testing = pytest.importorskip('mmdet.testing')
mmdet_structures = pytest.importorskip('mmdet.structures')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CANVAS = osp.join(ROOT, 'configs', 'detection', 'canvas')
CANVAS_KD = {'canvas_det_cwd.py': 'kl', 'canvas_det_fgd.py': 'fgd', 'canvas_det_pkd.py': 'pkd'}
IMG = 128


def det_batch(n=2, size=IMG, num_classes=10):
    return mmdet_testing.demo_mm_inputs(batch_size=n, image_shapes=(3, size, size),
                                        num_classes=num_classes, num_items=[3] * n)


def canvas_distiller(name, **overrides):
    """The distiller of a canvas KD config, its teacher a random init."""
    cfg = Config.fromfile(osp.join(CANVAS, name))
    cfg.merge_from_dict({'model.teacher_checkpoint': None, **overrides})
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return ROOT_MODELS.build(copy.deepcopy(cfg.model)), cfg


# --- the distiller's context ---------------------------------------------------------------

def test_context_carries_the_boxes_of_det_batches():
    model, _ = canvas_distiller('canvas_det_pkd.py')
    data = model.data_preprocessor(det_batch(), True)
    context = model._context(data['data_samples'])
    assert {'gt_labels', 'sample_idx', 'epoch', 'iter'} <= set(context)
    assert len(context['gt_boxes']) == 2
    for boxes, sample in zip(context['gt_boxes'], data['data_samples']):
        assert isinstance(boxes, torch.Tensor) and boxes.shape == (3, 4)
        assert boxes is sample.gt_instances.bboxes or \
            boxes is getattr(sample.gt_instances.bboxes, 'tensor', None)  # not copied
    assert context['img_shapes'] == [(IMG, IMG), (IMG, IMG)]
    assert tuple(context['batch_input_shape']) == (IMG, IMG)


def test_context_without_boxes_is_none():
    empty = dict(gt_boxes=None, img_shapes=None, batch_input_shape=None)
    assert detection_context(None) == empty
    assert detection_context({'gt_label': torch.tensor([1, 2])}) == empty  # classification
    sample = mmdet_structures.DetDataSample(metainfo=dict(img_shape=(8, 8)))
    assert detection_context([sample]) == empty  # no gt_instances
    boxes = mmdet_structures.bbox.HorizontalBoxes(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    sample.gt_instances = InstanceData(bboxes=boxes)
    context = detection_context([sample])
    assert torch.equal(context['gt_boxes'][0], boxes.tensor)  # HorizontalBoxes -> tensor
    assert context['img_shapes'] == [(8, 8)] and context['batch_input_shape'] is None


# --- canvas configs: one real train step each ---------------------------------------------

def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize('name,distance', sorted(CANVAS_KD.items()))
def test_canvas_kd_config_train_step(name, distance):
    model, cfg = canvas_distiller(name)
    assert isinstance(model, Distiller)
    assert cfg.model.teacher == 'configs/detection/canvas/canvas_det_teacher.py'
    assert type(model.student).__name__ == type(model.teacher).__name__ == 'RetinaNet'
    assert model.student.backbone.base_channels == 16
    assert model.teacher.backbone.base_channels == 64
    assert len(model.terms) == 3
    model.train()
    teacher_before = snapshot(model.teacher)
    distiller_before = snapshot(model)
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log_vars = model.train_step(det_batch(), optim_wrapper)
    names = [f'loss_{t["name"]}' for t in cfg.model.distill_terms]
    assert {'loss_cls', 'loss_bbox', *names} <= set(log_vars)
    for key in names:
        value = float(log_vars[key])
        assert value > 0 and torch.isfinite(torch.tensor(value)), key
    for key, value in model.teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_before[key], rtol=0, atol=0)
    if distance == 'fgd':
        # the global-context blocks are trained with the student and saved with it
        assert any('.distance.context_t.' in k for k in model.state_dict())
        # (their last convs start at zero, so the first step moves those only)
        for side in ('s', 't'):
            key = f'terms.0.distance.context_{side}.channel_add.3.weight'
            assert not torch.equal(model.state_dict()[key], distiller_before[key]), key


def test_canvas_fgd_uses_the_boxes():
    """The FGD terms of the canvas config see the batch's boxes: other boxes, other loss."""
    model, _ = canvas_distiller('canvas_det_fgd.py')
    model.train()
    data = det_batch()
    losses = model(**model.data_preprocessor(copy.deepcopy(data), True), mode='loss')
    for sample in data['data_samples']:
        sample.gt_instances.bboxes = sample.gt_instances.bboxes * 0.5
    moved = model(**model.data_preprocessor(data, True), mode='loss')
    assert float(losses['loss_fgd_p3']) != pytest.approx(float(moved['loss_fgd_p3']),
                                                           rel=1e-6)


def test_fgd_without_boxes_names_the_missing_context():
    model, _ = canvas_distiller('canvas_det_fgd.py', **{'model.student_loss_weight': 0.0})
    model.train()
    data = det_batch()
    for sample in data['data_samples']:
        del sample.gt_instances
    with pytest.raises(ValueError, match=r"distill term 'fgd_p3' \(neck\[0\] -> neck\[0\]\).*"
                                         r"gt_boxes"):
        model(**model.data_preprocessor(data, True), mode='loss')


def test_canvas_configs_data_and_student():
    teacher = Config.fromfile(osp.join(CANVAS, 'canvas_det_teacher.py'))
    student = Config.fromfile(osp.join(CANVAS, 'canvas_det_student.py'))
    assert teacher.default_scope == 'mmdet'
    dataset = teacher.train_dataloader.dataset
    assert dataset.type == 'CocoDataset' and dataset.data_root == 'data/canvas_coco/'
    assert dataset.ann_file == 'annotations/instances_train.json'
    assert dataset.data_prefix == dict(img='train/')
    assert teacher.val_dataloader.dataset.data_prefix == dict(img='val/')
    assert teacher.val_evaluator.type == 'CocoMetric' and teacher.val_evaluator.metric == 'bbox'
    from kdzoo.datasets.fashion_mnist import FASHION_MNIST_CLASSES
    assert tuple(dataset.metainfo.classes) == FASHION_MNIST_CLASSES
    assert teacher.model.bbox_head.num_classes == 10
    for cfg in (teacher, student):
        assert cfg.model.backbone.init_cfg is None  # nothing to download
        assert cfg.model.backbone.norm_cfg.type == 'BN'
    assert student.model.backbone.base_channels == 16
    # the KD configs' student is the vanilla student
    for name in CANVAS_KD:
        kd = Config.fromfile(osp.join(CANVAS, name))
        assert kd.model.student.to_dict() == student.model.to_dict(), name
        assert kd.model.teacher_checkpoint == 'work_dirs/canvas_det_teacher/epoch_12.pth'
        assert kd.train_cfg.max_epochs == teacher.train_cfg.max_epochs == 12


def test_canvas_models_fit_the_canvas():
    """Anchors of P3 cover 16-25 px; a teacher step is a fraction of a second (sizing)."""
    torch.manual_seed(0)
    student_cfg = Config.fromfile(osp.join(CANVAS, 'canvas_det_student.py'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        student = ROOT_MODELS.build(student_cfg.model)
    sizes = student.bbox_head.prior_generator.base_sizes
    assert list(sizes) == [8, 16, 32]
    scales = student.bbox_head.prior_generator.scales
    assert 16 <= 8 * float(scales.min()) and 8 * float(scales.max()) <= 26
    data = student.data_preprocessor(det_batch(), True)
    feats = student.extract_feat(data['inputs'])
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 16), (8, 8), (4, 4)]
    assert all(f.shape[1] == 64 for f in feats)
    start = time.perf_counter()
    student.loss(data['inputs'], data['data_samples'])
    assert time.perf_counter() - start < 5.0


# --- full-COCO configs --------------------------------------------------------------------

COCO_CONFIGS = {
    'fgd_retinanet_x101-64x4d_r50_fpn_2x_coco.py': ('fgd', 'RetinaNet', 5),
    'pkd_retinanet_x101-64x4d_r50_fpn_2x_coco.py': ('pkd', 'RetinaNet', 5),
    'cwd_gfl_r101_r50_fpn_1x_coco.py': ('kl', 'GFL', 5),
    'fgd_faster-rcnn_cascade-mask-x101_r50_fpn_2x_coco.py': ('fgd', 'FasterRCNN', 5),
}


def test_every_detection_config_is_listed():
    found = {osp.basename(p) for p in glob.glob(osp.join(ROOT, 'configs', 'detection', '*.py'))}
    assert set(COCO_CONFIGS) <= found


@pytest.mark.parametrize('name', sorted(COCO_CONFIGS))
def test_coco_config(name):
    distance, arch, levels = COCO_CONFIGS[name]
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'detection', name))
    assert cfg.default_scope == 'mmdet' and cfg.model.type == 'kdzoo.Distiller'
    assert cfg.model.teacher_checkpoint.startswith('checkpoints/')
    terms = cfg.model.distill_terms
    assert len(terms) == levels
    for term in terms:
        kind = term['distance']
        assert (kind if isinstance(kind, str) else kind['type']) == distance
    header = open(osp.join(ROOT, 'configs', 'detection', name)).read().split('\n_base_')[0]
    assert 'Published target' in header and 'checkpoints/' in header
    if name.startswith('fgd_retinanet'):  # one model built, as the Runner would
        cfg.merge_from_dict({'model.student.backbone.init_cfg': None,
                             'model.teacher_checkpoint': None})
        with DefaultScope.overwrite_default_scope('mmdet'):
            model = ROOT_MODELS.build(copy.deepcopy(cfg.model))
        assert type(model.student).__name__ == type(model.teacher).__name__ == arch
        assert model.teacher.backbone.groups == 64
        assert all(term.distance.in_channels == 256 for term in model.terms)
