"""The CIFAR KD zoo and the timm / torchvision wrappers of ``ARCHITECTURES``."""
import pytest
import torch
from torch import nn

from kdzoo.models.architectures import ZOO_MODELS, CifarResNet
from kdzoo.registry import ARCHITECTURES

ARCHITECTURES.import_from_location()

# Exact parameter counts of CRD's released models (HobbitLong/RepDistiller, models/) at 100
# classes and 3 input channels, counted from that code; its paper's table rounds them to
# 0.08M ... 20.09M. The count is deterministic, so it must match exactly.
CRD_PARAMS = {
    'resnet8': 83892, 'resnet14': 181108, 'resnet20': 278324, 'resnet32': 472756,
    'resnet44': 667188, 'resnet56': 861620, 'resnet110': 1736564, 'resnet8x4': 1233540,
    'resnet32x4': 7433860, 'wrn_16_1': 180916, 'wrn_16_2': 703284, 'wrn_40_1': 569780,
    'wrn_40_2': 2255156, 'vgg8': 3965028, 'vgg11': 9277284, 'vgg13': 9462180,
    'vgg16': 14774436, 'vgg19': 20086692, 'mobilenetv2_half': 812836,
    'shufflenetv1': 949258, 'shufflenetv2': 1355528,
}
RESNETS = ('resnet8', 'resnet20', 'resnet8x4', 'wrn_16_1', 'wrn_40_2')


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_meta(**cfg) -> nn.Module:
    """Build without allocating or initialising real weights (for counting parameters)."""
    with torch.device('meta'):
        return ARCHITECTURES.build(cfg)


def test_registered_names():
    names = set(ARCHITECTURES.module_dict)
    assert set(ZOO_MODELS) <= names
    assert {'TimmModel', 'TorchvisionModel'} <= names


def test_architectures_hold_teachers_too():
    """One registry for every network: CRD's teachers sit beside the students, and a
    teacher shorthand builds its backbone from ``ARCHITECTURES``."""
    from kdzoo.models.teachers import build_teacher
    assert ARCHITECTURES.name == 'architecture'
    crd_teachers = {'resnet56', 'resnet110', 'resnet32x4', 'wrn_40_2', 'vgg13'}
    assert crd_teachers <= set(ARCHITECTURES.module_dict)
    teacher = build_teacher('resnet8x4', num_classes=10, in_channels=1)
    assert isinstance(teacher.backbone, CifarResNet)
    assert teacher.backbone.num_classes == 10


@pytest.mark.parametrize('name', ZOO_MODELS)
def test_zoo_model_on_28x28_gray(name):
    torch.manual_seed(0)
    model = ARCHITECTURES.build(dict(type=name, num_classes=10, in_channels=1)).eval()
    assert model.num_classes == 10
    for path in ('layer1', 'layer2', 'layer3', 'pool', 'fc'):
        model.get_submodule(path)
    assert isinstance(model.fc, nn.Linear)
    assert model.fc.in_features == model.num_features

    pooled = []
    model.pool.register_forward_hook(lambda m, i, o: pooled.append(o))
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        logits = model(x)
        feat = model.forward_features(x)
        head = model.forward_head(feat)
        pre_logits = model.forward_head(feat, pre_logits=True)
    assert logits.shape == (2, 10)
    assert feat.dim() == 4 and feat.shape[:2] == (2, model.num_features)
    torch.testing.assert_close(head, logits)
    assert pooled[0].shape == (2, model.num_features)
    torch.testing.assert_close(pre_logits, pooled[0])


@pytest.mark.parametrize('name', ['resnet8x4', 'wrn_16_1', 'mobilenetv2_half'])
def test_zoo_model_on_cifar(name):
    model = ARCHITECTURES.build(dict(type=name, num_classes=100, in_channels=3)).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


@pytest.mark.parametrize('name,expected', sorted(CRD_PARAMS.items()))
def test_crd_parameter_counts(name, expected):
    assert num_params(build_meta(type=name, num_classes=100)) == expected


def test_shufflenetv2_stem_is_crds_1x1():
    model = build_meta(type='shufflenetv2', num_classes=100)
    assert model.conv1.kernel_size == (1, 1)
    wide = build_meta(type='shufflenetv2', num_classes=100, stem_kernel_size=3)
    assert num_params(wide) - num_params(model) == 24 * 3 * (9 - 1)
    with pytest.raises(ValueError, match='stem_kernel_size must be 1 or 3, got 5'):
        build_meta(type='shufflenetv2', stem_kernel_size=5)


def test_mobilenetv2_half_is_half_width():
    full = build_meta(type='mobilenetv2', num_classes=100)
    half = build_meta(type='mobilenetv2_half', num_classes=100)
    assert half.conv1.out_channels * 2 == full.conv1.out_channels == 32
    assert half.num_features == full.num_features == 1280


@pytest.mark.parametrize('name', RESNETS + ('vgg8', 'mobilenetv2_half'))
def test_width_mult_reduces_parameters(name):
    base = build_meta(type=name, num_classes=10)
    narrow = build_meta(type=name, num_classes=10, width_mult=0.5)
    assert num_params(narrow) < 0.5 * num_params(base)
    if name != 'mobilenetv2_half':  # CRD keeps the 1280-channel head conv for widths <= 1
        assert narrow.num_features < base.num_features


@pytest.mark.parametrize('name', RESNETS)
def test_depth_mult_adds_blocks(name):
    base = build_meta(type=name, num_classes=10)
    deep = build_meta(type=name, num_classes=10, depth_mult=2)
    assert deep.blocks_per_stage == 2 * base.blocks_per_stage
    assert len(deep.layer2) == 2 * len(base.layer2)
    assert deep.depth > base.depth
    assert num_params(deep) > num_params(base)
    shallow = build_meta(type=name, num_classes=10, depth_mult=0.01)
    assert shallow.blocks_per_stage == 1


def test_bad_depth_raises():
    from kdzoo.models.architectures import CifarResNet, WideResNet
    with pytest.raises(ValueError, match='6n \\+ 2'):
        CifarResNet(depth=10)
    with pytest.raises(ValueError, match='6n \\+ 4'):
        WideResNet(depth=12)


def test_preact_hook_point():
    model = ARCHITECTURES.build(dict(type='resnet8', num_classes=10, in_channels=1)).eval()
    outputs = {}
    for path in ('layer3.0.preact', 'layer3'):
        model.get_submodule(path).register_forward_hook(
            lambda m, i, o, path=path: outputs.__setitem__(path, o))
    with torch.no_grad():
        model(torch.randn(2, 1, 28, 28))
    assert (outputs['layer3.0.preact'] < 0).any()
    torch.testing.assert_close(outputs['layer3'], outputs['layer3.0.preact'].relu())


def test_vgg_downsamples_large_inputs():
    model = ARCHITECTURES.build(dict(type='vgg8', num_classes=10, width_mult=0.125)).eval()
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 32, 32)).shape[-1] == 4
        assert model.forward_features(torch.randn(1, 3, 64, 64)).shape[-1] == 4


# --- timm / torchvision -------------------------------------------------------------------


def test_timm_model():
    model = ARCHITECTURES.build(dict(type='TimmModel', model_name='resnet18', num_classes=10,
                                in_channels=1)).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_torchvision_model():
    model = ARCHITECTURES.build(dict(type='TorchvisionModel', name='resnet18', num_classes=10,
                                in_channels=1)).eval()
    assert model.conv1.in_channels == 1
    assert model.num_features == 512 and model.num_classes == 10
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_unknown_names_suggest_valid_ones():
    with pytest.raises(KeyError, match='resnet18'):
        ARCHITECTURES.build(dict(type='TimmModel', model_name='resnet18x', num_classes=10))
    with pytest.raises(KeyError, match='resnet18'):
        ARCHITECTURES.build(dict(type='TorchvisionModel', name='resnet19', num_classes=10))


def test_pretrained_needs_a_local_file(tmp_path):
    with pytest.raises(ValueError, match='cannot be downloaded'):
        ARCHITECTURES.build(dict(type='TimmModel', model_name='resnet18', num_classes=10,
                            pretrained=True))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        ARCHITECTURES.build(dict(type='TimmModel', model_name='resnet18', num_classes=10,
                            pretrained=True, pretrained_path=str(tmp_path / 'none.pth')))
    with pytest.raises(ValueError, match='cannot be downloaded'):
        ARCHITECTURES.build(dict(type='TorchvisionModel', name='resnet18', num_classes=10,
                            weights='DEFAULT'))


def test_timm_pretrained_from_local_file(tmp_path):
    import timm
    source = timm.create_model('resnet18', num_classes=1000)
    path = tmp_path / 'resnet18.pth'
    torch.save(source.state_dict(), path)
    model = ARCHITECTURES.build(dict(type='TimmModel', model_name='resnet18', num_classes=10,
                                in_channels=1, pretrained=True, pretrained_path=str(path)))
    torch.testing.assert_close(model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    torch.testing.assert_close(model.conv1.weight,
                               source.conv1.weight.sum(dim=1, keepdim=True))
    assert model.fc.out_features == 10


def test_torchvision_weights_from_local_file(tmp_path):
    import torchvision
    source = torchvision.models.get_model('resnet18', num_classes=10)
    path = tmp_path / 'resnet18.pth'
    torch.save(dict(state_dict=source.state_dict()), path)
    model = ARCHITECTURES.build(dict(type='TorchvisionModel', name='resnet18', num_classes=10,
                                in_channels=1, weights=str(path)))
    torch.testing.assert_close(model.fc.weight, source.fc.weight)
    torch.testing.assert_close(model.conv1.weight,
                               source.conv1.weight.sum(dim=1, keepdim=True))
    # Another number of classes: the classifier is re-initialised, the rest loaded.
    model = ARCHITECTURES.build(dict(type='TorchvisionModel', name='resnet18', num_classes=7,
                                weights=str(path)))
    assert model.fc.out_features == 7
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight)
