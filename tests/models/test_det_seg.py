"""Distillers around mmdet detectors and mmseg segmentors: one real train step each.

Students come from mmdet / mmseg configs (``_base_ = ['mmdet::...']``), teachers from
``'mmdet::...'`` / ``'mmseg::...'`` config paths through ``ConfigTeacher``. Images are 64x64
and nothing is downloaded: ImageNet initialisations are switched off.
"""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import HOOKS as ROOT_HOOKS
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData

from kdzoo.engine.hooks import StudentCheckpointHook
from kdzoo.models import Distiller
from kdzoo.registry import TEACHERS
from kdzoo.utils import register_all_modules

register_all_modules()

mmdet_testing = pytest.importorskip('mmdet.testing')
mmseg_structures = pytest.importorskip('mmseg.structures')

IMG = 64
RETINA_R50 = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
FASTER_R50 = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
PSP_R50 = 'mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py'
PSP_R18 = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'

BN = dict(type='BN', requires_grad=True)
# mmseg's Cityscapes configs use SyncBN and 512x1024 crops: BN on CPU, tiny crops here.
SEG_OPTIONS = {
    'model.pretrained': None,
    'model.backbone.norm_cfg': BN,
    'model.decode_head.norm_cfg': BN,
    'model.auxiliary_head.norm_cfg': BN,
    'model.data_preprocessor.size': (IMG, IMG),
}


def model_of(config: str, options=None):
    """The ``model`` of an mmdet / mmseg config, read as a ``_base_`` so that it carries its
    ``_scope_`` (it then builds in its package's scope whatever the default scope is)."""
    cfg = Config.fromstring(f'_base_ = [{config!r}]', file_format='.py')
    if options:
        cfg.merge_from_dict(options)
    return cfg.model


def retinanet_r18():
    return model_of('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
                    {'model.backbone.init_cfg': None})


def faster_rcnn_r18():
    return model_of(FASTER_R50, {'model.backbone.depth': 18,
                                 'model.backbone.init_cfg': None,
                                 'model.neck.in_channels': [64, 128, 256, 512]})


def pspnet_r18():
    return model_of(PSP_R18, SEG_OPTIONS)


def det_batch():
    """Raw batch as the DetDataPreprocessor expects it: uint8 CHW images, DetDataSamples."""
    return mmdet_testing.demo_mm_inputs(batch_size=2, image_shapes=(3, IMG, IMG),
                                        num_classes=80)


def seg_batch(n=2):
    """Raw batch as the SegDataPreProcessor expects it: uint8 CHW images, SegDataSamples."""
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, IMG, IMG), dtype=torch.uint8, generator=gen))
        sample = mmseg_structures.SegDataSample(
            metainfo=dict(img_shape=(IMG, IMG), ori_shape=(IMG, IMG)))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, 19, (1, IMG, IMG), generator=gen))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


RETINA_TERMS = [
    # FPN level P3 of both (256 channels), through the ConvModule's conv.
    dict(student='neck.fpn_convs.0.conv', teacher='neck.fpn_convs.0.conv', distance='l2',
         name='fpn_p3'),
    # P4 as item 1 of the neck's tuple output, CWD-style.
    dict(student='neck[1]', teacher='neck[1]', transforms=['channel_dist'], distance='kl',
         tau=4.0, name='cwd_p4'),
    dict(student='neck[2]', teacher='neck[2]', transforms=['norm_C'], distance='cosine',
         weight=2.0, name='cos_p5'),
]

SEG_TERMS = [
    # CWD on the logits (19 channels each).
    dict(student='decode_head.conv_seg', teacher='decode_head.conv_seg',
         transforms=['channel_dist'], distance='kl', tau=4.0, weight=3.0, name='cwd'),
    # Last backbone stage: 512 channels (R18) vs 2048 (R50).
    dict(student='backbone.layer4', teacher='backbone.layer4', distance='l2',
         connector=dict(type='ConvConnector', in_channels=512, out_channels=2048),
         name='feat'),
]


def retinanet_distiller(**kwargs):
    torch.manual_seed(0)
    return Distiller(student=retinanet_r18(), teacher=RETINA_R50, distill_terms=RETINA_TERMS,
                     **kwargs)


def pspnet_distiller():
    torch.manual_seed(0)
    teacher = dict(type='ConfigTeacher', config=PSP_R50, cfg_options=SEG_OPTIONS)
    return Distiller(student=pspnet_r18(), teacher=teacher, distill_terms=SEG_TERMS)


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def check_train_step(model, data, task_keys, term_names, changed_param):
    """One ``train_step`` through MMEngine's optim wrapper: every loss is logged, the
    student moves, the teacher (weights and BN statistics) does not."""
    model.train()
    teacher_before = snapshot(model.teacher)
    student_before = snapshot(model.student)
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log_vars = model.train_step(data, optim_wrapper)
    expected = set(task_keys) | {f'loss_{name}' for name in term_names} | {'loss'}
    assert expected <= set(log_vars), sorted(log_vars)
    for key in expected:
        assert torch.isfinite(torch.as_tensor(log_vars[key])).all(), key
    kd_total = sum(float(log_vars[f'loss_{name}'].detach()) for name in term_names)
    assert kd_total > 0
    for key, value in model.teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_before[key], rtol=0, atol=0)
    assert not torch.equal(model.student.state_dict()[changed_param],
                           student_before[changed_param])
    assert not model.teacher.training and model.student.training
    return log_vars


def check_gradients(model, data, kd_loss, kd_params):
    """Forward + backward: no teacher gradient, and the KD loss alone reaches ``kd_params``."""
    model.train()
    losses = model(**model.data_preprocessor(data, True), mode='loss')
    student_params = dict(model.student.named_parameters())
    kd_grads = torch.autograd.grad(losses[kd_loss], [student_params[p] for p in kd_params],
                                   retain_graph=True)
    for name, grad in zip(kd_params, kd_grads):
        assert grad.abs().sum() > 0, f'{kd_loss} does not reach student {name}'
    model.parse_losses(losses)[0].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(not p.requires_grad for p in model.teacher.parameters())
    for name in kd_params:
        assert student_params[name].grad.abs().sum() > 0, name
    return losses


# --- detection ---------------------------------------------------------------------------

def test_retinanet_r50_to_r18_train_step():
    model = retinanet_distiller()
    assert type(model.student).__name__ == 'RetinaNet'
    assert type(model.teacher).__name__ == 'RetinaNet'
    assert model.teacher.backbone.depth == 50 and model.student.backbone.depth == 18
    assert not any(k.startswith('teacher') for k in model.state_dict())
    check_train_step(model, det_batch(), task_keys=['loss_cls', 'loss_bbox'],
                     term_names=['fpn_p3', 'cwd_p4', 'cos_p5'],
                     changed_param='neck.fpn_convs.0.conv.weight')


def test_retinanet_gradients_reach_the_student_only():
    model = retinanet_distiller()
    losses = check_gradients(model, det_batch(), 'loss_fpn_p3',
                             ['neck.fpn_convs.0.conv.weight',
                              'neck.lateral_convs.0.conv.weight',
                              'backbone.layer2.0.downsample.0.weight'])
    assert {'loss_cls', 'loss_bbox', 'loss_fpn_p3', 'loss_cwd_p4', 'loss_cos_p5'} <= set(losses)
    # The P3 hint stops at P3: P7's conv is not on its path.
    grad = torch.autograd.grad(
        losses['loss_fpn_p3'], model.student.neck.fpn_convs[4].conv.weight, allow_unused=True)
    assert grad[0] is None or grad[0].abs().sum() == 0


def test_retinanet_teacher_checkpoint_through_config_teacher(tmp_path):
    torch.manual_seed(123)
    source = TEACHERS.build(dict(type='ConfigTeacher', config=RETINA_R50))
    path = tmp_path / 'retinanet_r50.pth'
    torch.save(dict(state_dict=source.state_dict(), meta={}), path)
    saved = source.state_dict()
    for teacher in (RETINA_R50, dict(type='ConfigTeacher', config=RETINA_R50)):
        torch.manual_seed(0)  # a different random init: equality below comes from loading
        model = Distiller(student=retinanet_r18(), teacher=teacher,
                          teacher_checkpoint=str(path), distill_terms=RETINA_TERMS[:1])
        for key, value in model.teacher.state_dict().items():
            torch.testing.assert_close(value, saved[key], rtol=0, atol=0)
    losses = model(**model.data_preprocessor(det_batch(), True), mode='loss')
    assert torch.isfinite(losses['loss_fpn_p3'])


def test_faster_rcnn_r50_to_r18_train_step():
    # Two-stage teacher: its tensor-mode forward takes the batch's data_samples for its RPN.
    torch.manual_seed(0)
    terms = [dict(student=f'neck[{i}]', teacher=f'neck[{i}]', transforms=['channel_dist'],
                  distance='kl', tau=1.0, weight=10.0, name=f'cwd{i}') for i in range(2)]
    model = Distiller(student=faster_rcnn_r18(), teacher=FASTER_R50, distill_terms=terms)
    assert type(model.teacher).__name__ == 'FasterRCNN'
    check_train_step(model, det_batch(),
                     task_keys=['loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'],
                     term_names=['cwd0', 'cwd1'], changed_param='neck.fpn_convs.0.conv.weight')


# --- segmentation ------------------------------------------------------------------------

def test_pspnet_r50_to_r18_cwd_train_step():
    model = pspnet_distiller()
    assert type(model.student).__name__ == 'EncoderDecoder'
    assert type(model.teacher).__name__ == 'EncoderDecoder'
    for net in (model.student, model.teacher):
        assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in net.modules())
    assert model.teacher.decode_head.conv_seg.out_channels == 19
    log_vars = check_train_step(model, seg_batch(), task_keys=['decode.loss_ce', 'aux.loss_ce'],
                                term_names=['cwd', 'feat'],
                                changed_param='decode_head.conv_seg.weight')
    assert 'decode.acc_seg' in log_vars
    # The connector is trained with the student and saved with the distiller.
    assert any(k.startswith('terms.1.connector.conv') for k in model.state_dict())


def test_pspnet_gradients_reach_the_student_only():
    model = pspnet_distiller()
    losses = check_gradients(model, seg_batch(), 'loss_cwd',
                             ['decode_head.conv_seg.weight', 'backbone.layer4.1.conv2.weight'])
    assert {'decode.loss_ce', 'aux.loss_ce', 'loss_cwd', 'loss_feat'} <= set(losses)
    connector = model.terms[1].connector.conv.weight
    assert connector.grad is not None and connector.grad.abs().sum() > 0


# --- example configs ---------------------------------------------------------------------

EXAMPLE_CONFIGS = [
    # config, default scope, no-download options, student / teacher types
    ('configs/detection/retinanet_r50_r18_fpn_kd_coco.py', 'mmdet',
     {'model.student.backbone.init_cfg': None}, 'RetinaNet'),
    ('configs/segmentation/pspnet_r101_r18_cwd_cityscapes.py', 'mmseg',
     {'model.student.pretrained': None}, 'EncoderDecoder'),
] + [(f'configs/segmentation/deeplabv3_r101_r18_{method}_cityscapes.py', 'mmseg',
      {'model.student.pretrained': None}, 'EncoderDecoder')
     for method in ('cwd', 'skd', 'dist')]


@pytest.mark.parametrize('path,scope,options,arch', EXAMPLE_CONFIGS)
def test_example_config_builds(path, scope, options, arch):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == scope
    assert cfg.model.type == 'kdzoo.Distiller'
    assert cfg.model.teacher_checkpoint.startswith('checkpoints/')
    assert any(h['type'] == 'kdzoo.StudentCheckpointHook' for h in cfg.custom_hooks)
    cfg.merge_from_dict(dict(options, **{'model.teacher_checkpoint': None}))
    # What the Runner does: build in the config's default scope, where the rest of the config
    # (datasets, evaluator, hooks) resolves; kdzoo's types carry the 'kdzoo.' prefix.
    with DefaultScope.overwrite_default_scope(scope):
        with ROOT_MODELS.switch_scope_and_registry(None) as registry:
            assert registry.get('Distiller') is None  # so the plain name would not build
        model = ROOT_MODELS.build(copy.deepcopy(cfg.model))
        hooks = [ROOT_HOOKS.build(h) for h in cfg.custom_hooks]
    assert isinstance(model, Distiller)
    assert type(model.student).__name__ == arch and type(model.teacher).__name__ == arch
    assert any(isinstance(h, StudentCheckpointHook) for h in hooks)
    assert len(model.terms) == len(cfg.model.distill_terms)
    assert all(not p.requires_grad for p in model.teacher.parameters())
