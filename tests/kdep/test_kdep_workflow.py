"""KDEP as a workflow: input hooks, the fit step (also on 2 gloo ranks), SM's target,
fine-tune loading, the unlabeled data mode with a one-step pre-training run, and the
teacher compactness measure."""
import json
import math
import os
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.kd.transforms.kdep import feature_compactness, fit_chain
from kdzoo.kd import build_transform
from kdzoo.models import FeatureRecorder

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


# --- path:input ------------------------------------------------------------------------------

def test_input_hook_records_the_pooled_feature_kdzoo_timm_torchvision():
    from kdzoo.models import ImageClassifier
    torch.manual_seed(0)
    x = torch.randn(3, 1, 28, 28)
    model = ImageClassifier(backbone=dict(type='resnet8', num_classes=10, in_channels=1,
                                          width_mult=0.5)).eval()
    with FeatureRecorder(model, ['backbone.fc:input', 'backbone.fc']) as rec, torch.no_grad():
        logits = model(x)
        net = model.backbone
        torch.testing.assert_close(rec.get('backbone.fc:input'),
                                   net.forward_head(net.forward_features(x), pre_logits=True))
        torch.testing.assert_close(rec.get('backbone.fc'), logits)

    import timm
    net = timm.create_model('resnet18', num_classes=10, in_chans=1, pretrained=False).eval()
    with FeatureRecorder(net, ['fc:input']) as rec, torch.no_grad():
        net(x)
        torch.testing.assert_close(rec.get('fc:input'),
                                   net.forward_head(net.forward_features(x), pre_logits=True))

    import torchvision
    net = torchvision.models.resnet18(num_classes=10).eval()
    x3 = torch.randn(2, 3, 64, 64)
    block = net.layer4[1]
    with FeatureRecorder(net, ['fc:input', 'layer4.1.relu:input']) as rec, torch.no_grad():
        net(x3)
    with torch.no_grad():  # the reference, with the recorder off
        trunk = net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x3)))))))
        pre = net.layer4[0](trunk)
        # the pre-ReLU sum of the last block: torchvision's in-place ReLU is called twice per
        # block, the recorder keeps the input of its last call, before it is overwritten
        pre_relu = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(pre))))) + pre
        torch.testing.assert_close(rec.get('layer4.1.relu:input'), pre_relu)
        assert (rec.get('layer4.1.relu:input') < 0).any()
        torch.testing.assert_close(rec.get('fc:input'),
                                   torch.flatten(net.avgpool(F.relu(pre_relu)), 1))


def test_input_hook_index_suffix_errors_and_tuple_outputs():
    class Two(nn.Module):
        def forward(self, a, b):
            return a + b, a - b

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.two = Two()

        def forward(self, x):
            s, d = self.two(x, 2 * x)
            return s * d

    net, x = Net(), torch.randn(2, 3)
    with FeatureRecorder(net, ['two:input[1]', 'two[1]', 'two:output[0]']) as rec:
        net(x)
    torch.testing.assert_close(rec.get('two:input[1]'), 2 * x)
    torch.testing.assert_close(rec.get('two[1]'), -x)
    torch.testing.assert_close(rec.get('two:output[0]'), 3 * x)
    with pytest.raises(TypeError, match=r'takes 2 positional inputs; pick one with two:input\[i\]'):
        with FeatureRecorder(net, ['two:input']):
            net(x)
    with pytest.raises(ValueError, match=r"unknown suffix ':inptu' \(did you mean 'input'\?\); "
                                         r'valid suffixes: :output, :input'):
        FeatureRecorder(net, ['two:inptu'])
    with pytest.raises(KeyError, match='has no module'):
        FeatureRecorder(net, ['tow:input'])


# --- fit step: SM's default target, SVD identical on two ranks -------------------------------

def test_sm_default_target_is_the_pre_svd_max_std():
    torch.manual_seed(0)
    # correlated channels, so the top SVD direction gathers more than any one channel
    t = torch.randn(200, 8) @ torch.randn(8, 8) * torch.tensor([5.0, 1, 2, 0.5, 3, 1, 1, 0.2])
    s = torch.randn(200, 3)
    chain = [build_transform(dict(type='svd')), build_transform('sm')]
    lines = fit_chain(chain, s, t)
    assert len(lines) == 2 and 'target std' in lines[1]
    pre_svd_max_std = t.std(0, unbiased=False).max()
    torch.testing.assert_close(chain[1].target, pre_svd_max_std.to(torch.float32))
    projected = chain[0](t)  # the max std after the SVD is larger (the top direction)
    assert float(projected.std(0, unbiased=False).max()) > float(pre_svd_max_std) * 1.05
    # the fitted SM gives every projected teacher channel that std
    chain[1].eval()
    _, out = chain[1].pair(s, projected)
    torch.testing.assert_close(out.std(0, unbiased=False),
                               pre_svd_max_std.expand(3), rtol=1e-3, atol=1e-3)


def _distiller(seed=0):
    from kdzoo.models import Distiller
    torch.manual_seed(seed)
    teacher = _classifier('resnet20', 1.0)
    student = _classifier('resnet8', 0.5)
    return Distiller(student=student, teacher=teacher, student_loss_weight=0.0,
                     distill_terms=[dict(student='backbone.layer3.0.preact',
                                         teacher='backbone.layer3.2.preact',
                                         transforms=['gap', 'svd', 'sm'], distance='l2',
                                         name='kdep')])


def _classifier(arch, width):
    from kdzoo.models import ImageClassifier
    return ImageClassifier(backbone=dict(type=arch, num_classes=10, in_channels=1,
                                         width_mult=width),
                           data_preprocessor=dict(type='ImgDataPreprocessor', mean=[72.94],
                                                  std=[90.0]))


def _dataset(root):
    from kdzoo.datasets import FashionMNIST, UnlabeledDataset
    pipeline = [dict(type='RandomCropPad', size=28, padding=2),
                dict(type='mmcv.RandomFlip', prob=0.5, direction='horizontal'),
                dict(type='PackClsInputs')]
    return UnlabeledDataset(FashionMNIST(split='train', data_root=root, pipeline=pipeline))


def _fit_on_rank(rank, world, port, root, out_dir):
    from kdzoo.utils import register_all_modules
    torch.set_num_threads(1)
    register_all_modules()
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=world)
    try:
        from kdzoo.engine.kdep_hooks import KDEPFitHook
        model = _distiller()
        torch.manual_seed(1000 + rank)  # unseeded randomness would now differ per rank
        KDEPFitHook(num_samples=96, batch_size=32, seed=3).fit(model, _dataset(root))
        torch.save({k: v for k, v in model.state_dict().items() if k.startswith('terms.')},
                   osp.join(out_dir, f'rank{rank}.pth'))
    finally:
        torch.distributed.destroy_process_group()


def test_svd_basis_is_the_same_on_two_gloo_ranks(tmp_path, fmnist_root):
    import torch.multiprocessing as mp
    from kdzoo.engine.kdep_hooks import KDEPFitHook, fit_indices
    from kdzoo.search.runner import free_port
    from kdzoo.utils import register_all_modules
    mp.spawn(_fit_on_rank, args=(2, free_port(), fmnist_root, str(tmp_path)), nprocs=2,
             join=True)
    states = [torch.load(tmp_path / f'rank{r}.pth') for r in range(2)]
    assert set(states[0]) >= {'terms.0.transforms.1.basis', 'terms.0.transforms.1.mean',
                              'terms.0.transforms.2.target'}
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    assert states[0]['terms.0.transforms.1.basis'].shape == (64, 32)
    assert bool(states[0]['terms.0.transforms.1.fitted'])

    # ... and it is the fit of those 96 samples: the same in one process, by hand
    register_all_modules()
    model = _distiller()
    dataset = _dataset(fmnist_root)
    lines = KDEPFitHook(num_samples=96, batch_size=32, seed=3).fit(model, dataset)
    assert 'fitting on 96 training samples' in lines[0]
    # a resumed run (fitted buffers loaded from its checkpoint) does not refit
    again = KDEPFitHook(num_samples=96, batch_size=32, seed=4).fit(model, dataset)
    assert again == ['KDEPFitHook: the KDEP transforms are already fitted (resumed run); '
                     'nothing to fit']
    torch.testing.assert_close(model.terms[0].transforms[1].basis,
                               states[0]['terms.0.transforms.1.basis'])
    from kdzoo.datasets.seeding import sample_seed, seeded_rngs
    from kdzoo.engine.kdep_hooks import FIT_REPLAY
    from mmengine.dataset import default_collate
    items = []
    for i in fit_indices(len(dataset), 96, 3):
        with seeded_rngs(sample_seed(3, 0, i, FIT_REPLAY)):
            items.append(dataset[i])
    data = model.data_preprocessor(default_collate(items), True)
    with torch.no_grad(), FeatureRecorder(model.teacher, ['backbone.layer3.2.preact']) as rec:
        model.teacher(data['inputs'])
        pooled = rec.get('backbone.layer3.2.preact').mean((2, 3)).double()
    centred = pooled - pooled.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    basis = model.terms[0].transforms[1].basis.double()
    # the same subspace, directions up to sign
    torch.testing.assert_close((vh[:32] @ basis).abs(), torch.eye(32, dtype=torch.float64),
                               atol=1e-4, rtol=0)
    # SM's target: the max channel std of the pooled teacher features before the SVD
    torch.testing.assert_close(float(model.terms[0].transforms[2].target),
                               float(pooled.std(0, unbiased=False).max()), rtol=1e-5, atol=0)


# --- fine-tune loading ------------------------------------------------------------------------

def test_finetune_loads_all_but_the_head_and_lists_mismatches(tmp_path, monkeypatch):
    from mmengine.registry import DefaultScope
    import kdzoo.models.checkpoint as ckpt_mod
    from kdzoo.models import ImageClassifier
    from kdzoo.models.checkpoint import load_pretrained
    from kdzoo.utils import register_all_modules
    register_all_modules()
    logs = []
    monkeypatch.setattr(ckpt_mod, 'print_log', lambda msg, **kw: logs.append(msg))
    torch.manual_seed(0)
    pretrained = _classifier('resnet8', 0.5)
    path = tmp_path / 'student_latest.pth'
    # what StudentCheckpointHook writes
    torch.save(dict(meta=dict(source='kdzoo student-only checkpoint'),
                    state_dict=pretrained.state_dict()), path)

    torch.manual_seed(1)
    model = ImageClassifier(backbone=dict(type='resnet8', num_classes=10, in_channels=1,
                                          width_mult=0.5),
                            init_cfg=dict(type='FineTunePretrained', checkpoint=str(path)))
    fresh_head = {k: v.clone() for k, v in model.state_dict().items()
                  if k.startswith('backbone.fc.')}
    with DefaultScope.overwrite_default_scope('kdzoo'):
        model.init_weights()
    ref = pretrained.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith('backbone.fc.'):
            assert torch.equal(value, fresh_head[key]), key      # re-initialised
            assert not torch.equal(value, ref[key]), key         # not the pre-trained head
        else:
            assert torch.equal(value, ref[key]), key             # loaded
    assert 're-initialised (not loaded, backbone.fc): backbone.fc.weight, backbone.fc.bias' \
        in logs[-1]

    # a distiller checkpoint (student.*) into a deeper student with 5 classes: the loadable
    # tensors load, the rest is listed
    state = {'student.' + k: v for k, v in pretrained.state_dict().items()}
    state['terms.0.transforms.1.basis'] = torch.zeros(64, 32)
    torch.save(dict(state_dict=state), tmp_path / 'epoch_1.pth')
    other = ImageClassifier(backbone=dict(type='resnet14', num_classes=5, in_channels=1,
                                          width_mult=0.5))
    report = load_pretrained(other, str(tmp_path / 'epoch_1.pth'), reinit=[])
    assert 'backbone.layer1.1.conv1.weight' in report['missing']           # an extra block
    assert any(m.startswith('backbone.fc.weight: checkpoint (10, 32) vs model (5, 32)')
               for m in report['mis_shaped'])
    assert 'backbone.conv1.weight' in report['loaded']
    assert 'missing in the checkpoint (kept their init): backbone.layer1.1' in logs[-1]
    assert 'shape mismatches (kept their init): backbone.fc.weight' in logs[-1]
    with pytest.raises(KeyError, match="has no module 'backbone.head'"):
        load_pretrained(other, str(path), reinit=['backbone.head'])


# --- unlabeled data, one KDEP step -------------------------------------------------------------

def test_unlabeled_data_yields_no_labels(tmp_path, fmnist_root):
    from kdzoo.datasets import ImageFolder
    item = _dataset(fmnist_root)[0]
    assert item['data_samples'] == {} and item['inputs'].shape == (1, 28, 28)
    for sub in ('a', 'b/c'):
        os.makedirs(tmp_path / 'imgs' / 'unlabeled' / sub)
        (tmp_path / 'imgs' / 'unlabeled' / sub / 'x.png').write_bytes(b'')
    (tmp_path / 'imgs' / 'unlabeled' / 'top.jpg').write_bytes(b'')
    folder = ImageFolder(str(tmp_path / 'imgs'), split='unlabeled', with_label=False)
    infos = [folder.get_data_info(i) for i in range(len(folder))]
    assert sorted(osp.relpath(i['img_path'], tmp_path / 'imgs' / 'unlabeled')
                  for i in infos) == ['a/x.png', 'b/c/x.png', 'top.jpg']
    assert all('gt_label' not in i for i in infos)


def test_kdep_config_trains_one_step_without_task_loss(tmp_path, fmnist_root):
    from kdzoo.cli.train import main
    torch.manual_seed(0)
    teacher = _classifier('resnet20', 1.0)
    torch.save(dict(state_dict=teacher.state_dict()), tmp_path / 'teacher.pth')
    work = tmp_path / 'kdep'
    data = 'train_dataloader.dataset.dataset'
    main(['configs/kdep/kdep_svd_pts_fmnist.py', '--work-dir', str(work), '--cfg-options',
          f'model.teacher_checkpoint={tmp_path / "teacher.pth"}',
          f'{data}.dataset.data_root={fmnist_root}', f'{data}.val_size=100',
          f'{data}.train_size=32', 'train_dataloader.batch_size=32',
          'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
          'train_cfg.max_epochs=1', 'custom_hooks.1.num_samples=32'])
    scalars = [json.loads(line) for run in os.listdir(work)
               if osp.isdir(work / run / 'vis_data')
               for line in open(work / run / 'vis_data' / 'scalars.json')]
    losses = [r for r in scalars if 'loss' in r]
    assert len(losses) == 1 and 'loss_kdep' in losses[0] and 'loss_cls' not in losses[0]
    assert math.isfinite(losses[0]['loss_kdep'])
    state = torch.load(work / 'epoch_1.pth', weights_only=False)['state_dict']
    assert bool(state['terms.0.transforms.1.fitted'])
    assert state['terms.0.transforms.1.basis'].shape == (64, 32)
    student = torch.load(work / 'student_latest.pth', weights_only=False)['state_dict']
    assert 'backbone.fc.weight' in student and not any(k.startswith('terms') for k in student)
    log = open(next(work.glob('*/*.log'))).read()
    assert 'KDEPFitHook: fitting on 32 training samples' in log


# --- teacher compactness ----------------------------------------------------------------------

def test_compactness_against_a_hand_computation():
    # centred rows +-3 e1, +-1 e2: X^T X = diag(18, 2, 0), singular values (3, 1, 0) * sqrt(2)
    x = torch.tensor([[3.0, 0, 0], [-3, 0, 0], [0, 1, 0], [0, -1, 0]]) + 7.0
    out = feature_compactness(x, k=2)
    erank = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))  # p = (3/4, 1/4, 0)
    assert out['effective_rank'] == pytest.approx(erank, abs=1e-9)
    assert out['compactness'] == pytest.approx(1 - erank / 3, abs=1e-9)
    assert out['top1_share'] == pytest.approx(18 / 20, abs=1e-9)
    assert out['std_ratio'] == pytest.approx(3.0, abs=1e-9)
    assert out['topk_share'] == pytest.approx(1.0, abs=1e-9)
    # scale- and rotation-free: the ranking key does not move
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    again = feature_compactness(5.0 * x.double() @ q, k=2)
    assert again['effective_rank'] == pytest.approx(erank, abs=1e-9)


def test_compactness_tool_ranks_teachers(tmp_path, fmnist_root):
    sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
    try:
        import teacher_compactness
    finally:
        sys.path.pop(0)
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        teacher = _classifier('resnet20', 1.0)
        if seed == 1:  # a compact teacher: one channel of its last block dominates
            with torch.no_grad():
                teacher.backbone.layer3[2].bn2.weight.zero_()[0] = 100.0
        paths.append(str(tmp_path / f't{seed}.pth'))
        torch.save(dict(state_dict=teacher.state_dict()), paths[-1])
    results = teacher_compactness.main([
        'configs/kdep/kdep_svd_pts_fmnist.py', '--checkpoint', *paths, '--num-samples', '64',
        '--out', str(tmp_path / 'rank.json'), '--cfg-options',
        f'train_dataloader.dataset.dataset.dataset.data_root={fmnist_root}',
        'train_dataloader.dataset.dataset.val_size=100'])
    assert [r['teacher'] for r in results] == paths  # the compact one ranks last
    assert results[0]['effective_rank'] > 2 * results[1]['effective_rank']
    assert results[0]['k'] == 32 and results[0]['dim'] == 64
    assert json.load(open(tmp_path / 'rank.json'))[0]['teacher'] == results[0]['teacher']


def test_imagenet_scale_config_hooks_timm_and_torchvision_pre_relu_features():
    from mmengine.config import Config
    from kdzoo.registry import MODELS
    from kdzoo.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(osp.join(ROOT, 'configs/kdep/kdep_imagefolder_r50_r18.py'))
    assert cfg.train_dataloader.dataset.with_label is False
    model_cfg = cfg.model.to_dict()
    model_cfg['teacher'].pop('pretrained_path')  # no weights file here: a random init
    model_cfg['student']['backbone']['num_classes'] = 10
    model_cfg['teacher']['num_classes'] = 10
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    with torch.no_grad():  # timm zero-inits each block's last BN: give the sum a residual
        model.teacher.backbone.layer4[2].bn3.weight.fill_(1.0)
    data = model.data_preprocessor(dict(inputs=[torch.randint(0, 255, (3, 64, 64),
                                                              dtype=torch.uint8)
                                                for _ in range(4)]), True)
    # the fit step on these 4 images, then one loss: 2048 teacher channels -> 512
    s = model.student_recorder
    with torch.no_grad(), s:
        model.student(data['inputs'], mode='tensor')
        student_feat = s.get('backbone.layer4.1.relu:input')
    teacher_feat = model.source.outputs(data['inputs'])['backbone.layer4.2.act3:input']
    assert (teacher_feat < 0).any() and (student_feat < 0).any()  # pre-ReLU
    fit_chain(model.terms[0].transforms, student_feat, teacher_feat)
    assert model.terms[0].transforms[1].basis.shape == (2048, 512)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_kdep'} and torch.isfinite(losses['loss_kdep'])
