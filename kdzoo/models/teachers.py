"""Where a teacher comes from. Each ``TEACHERS`` entry builds a frozen teacher model.

A distiller's ``teacher=`` accepts a dict (a ``TEACHERS`` or ``MODELS`` type) or a string:

- ``'timm/resnet50'`` / ``'torchvision/resnet18'``: a timm / torchvision network;
- a config file path (``.py``) or ``'mmdet::...'`` / ``'mmseg::...'``: the model of that
  config (for a distiller config, its student);
- any other string: a kdzoo architecture name, e.g. ``'resnet32x4'``.

A ``checkpoint`` is loaded strictly, before training starts: a missing file or mismatched keys
raise an error that names the file and the keys.
"""
import copy
from typing import Optional, Union

from mmengine.config import Config, ConfigDict
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from torch import nn

from kdzoo.registry import MODELS, TEACHERS
from .checkpoint import load_checkpoint_strict


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode, no gradients; the distiller also keeps it in eval mode."""
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def _drop_pretrained_init(cfg):
    """Remove ``init_cfg=dict(type='Pretrained', ...)`` entries: nothing can be downloaded,
    and the teacher checkpoint provides the weights."""
    if isinstance(cfg, dict):
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        if isinstance(cfg.get('pretrained'), str):  # mmseg segmentors' ImageNet weights
            cfg['pretrained'] = None
        for value in cfg.values():
            _drop_pretrained_init(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            _drop_pretrained_init(value)
    return cfg


def _load(model: nn.Module, checkpoint: Optional[str]) -> nn.Module:
    if checkpoint is not None:
        load_checkpoint_strict(model, checkpoint, owner='teacher')
    return model


@TEACHERS.register_module()
def ModelTeacher(model: dict, checkpoint: Optional[str] = None,
                 scope: Optional[str] = None) -> nn.Module:
    """A teacher from a model config dict (any ``MODELS`` type) and a checkpoint."""
    model = copy.deepcopy(model)
    if not isinstance(model, nn.Module):
        # A ConfigDict all the way down: mmseg's segmentors set attributes on their sub-configs.
        model = _drop_pretrained_init(ConfigDict(model))
        with DefaultScope.overwrite_default_scope(scope):
            model = MODELS.build(model)
    return _load(model, checkpoint)


def _resolve_config_path(config: str) -> str:
    """``'mmdet::retinanet/x.py'`` -> that file in the installed package, as ``_base_`` does."""
    if '::' not in config:
        return config
    from mmengine.config.utils import (_get_external_cfg_base_path,
                                       _get_package_and_cfg_path)
    from mmengine.utils import get_installed_path, is_installed
    package, rel_path = _get_package_and_cfg_path(config)
    if not is_installed(package):
        raise ModuleNotFoundError(f'{package} is not installed; the teacher config {config} '
                                  f'needs it')
    return _get_external_cfg_base_path(get_installed_path(package), rel_path)


@TEACHERS.register_module()
def ConfigTeacher(config: str, checkpoint: Optional[str] = None,
                  cfg_options: Optional[dict] = None) -> nn.Module:
    """A teacher from a config file: a local path or ``mmdet::`` / ``mmseg::`` config.

    The model is built in the config's ``default_scope`` (e.g. ``mmdet``). For a distiller
    config, its student is the teacher (e.g. a distilled teacher assistant).
    """
    cfg = Config.fromfile(_resolve_config_path(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model_cfg = cfg.model
    if model_cfg.get('type') in ('Distiller', 'kdzoo.Distiller'):
        model_cfg = model_cfg.student
    scope = cfg.get('default_scope', 'kdzoo')
    if scope in ('mmdet', 'mmseg'):
        # Import the package's modules so its registry is complete.
        import importlib
        importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)
    return ModelTeacher(model_cfg.to_dict(), checkpoint=checkpoint, scope=scope)


def _classifier(backbone: dict, data_preprocessor: Optional[dict]) -> dict:
    return dict(type='ImageClassifier', backbone=backbone, data_preprocessor=data_preprocessor)


@TEACHERS.register_module()
def TimmTeacher(model_name: str, num_classes: int, in_channels: int = 3,
                checkpoint: Optional[str] = None, data_preprocessor: Optional[dict] = None,
                **kwargs) -> nn.Module:
    """A timm network as a classifier teacher; weights come from a local ``checkpoint``."""
    backbone = dict(type='TimmModel', model_name=model_name, num_classes=num_classes,
                    in_channels=in_channels, **kwargs)
    return ModelTeacher(_classifier(backbone, data_preprocessor), checkpoint)


@TEACHERS.register_module()
def TorchvisionTeacher(name: str, num_classes: int, in_channels: int = 3,
                       checkpoint: Optional[str] = None,
                       data_preprocessor: Optional[dict] = None) -> nn.Module:
    """A torchvision network as a classifier teacher; weights from a local ``checkpoint``."""
    backbone = dict(type='TorchvisionModel', name=name, num_classes=num_classes,
                    in_channels=in_channels)
    return ModelTeacher(_classifier(backbone, data_preprocessor), checkpoint)


def teacher_config(spec: Union[str, dict], **defaults) -> dict:
    """Normalise the string shorthands into a ``TEACHERS`` config dict."""
    if isinstance(spec, dict):
        spec = dict(spec)
        TEACHERS.import_from_location()
        if TEACHERS.get(spec.get('type', '')) is not None:
            if 'checkpoint' in defaults:
                spec.setdefault('checkpoint', defaults['checkpoint'])
            return spec
        checkpoint = spec.pop('checkpoint', defaults.get('checkpoint'))
        return dict(type='ModelTeacher', model=spec, checkpoint=checkpoint)
    if not isinstance(spec, str):
        raise TypeError(f'teacher must be a string or a dict, got {type(spec).__name__}')
    if spec.startswith('timm/'):
        return dict(type='TimmTeacher', model_name=spec[len('timm/'):], **defaults)
    if spec.startswith('torchvision/'):
        return dict(type='TorchvisionTeacher', name=spec[len('torchvision/'):], **defaults)
    if spec.endswith('.py') or '::' in spec:
        defaults.pop('num_classes', None)
        defaults.pop('in_channels', None)
        return dict(type='ConfigTeacher', config=spec, **defaults)
    checkpoint = defaults.pop('checkpoint', None)
    backbone = dict(type=spec, **defaults)
    return dict(type='ModelTeacher', model=_classifier(backbone, None), checkpoint=checkpoint)


def build_teacher(spec: Union[str, dict, nn.Module], **defaults) -> nn.Module:
    """Build a frozen teacher from a module, a ``TEACHERS``/``MODELS`` dict or a shorthand."""
    if isinstance(spec, nn.Module):
        return freeze(spec)
    TEACHERS.import_from_location()
    cfg = teacher_config(spec, **defaults)
    if cfg['type'] == 'ModelTeacher':
        # A model dict is built in the run's scope (e.g. mmdet), like the student.
        current = DefaultScope.get_current_instance()
        cfg.setdefault('scope', current.scope_name if current else None)
    with DefaultScope.overwrite_default_scope('kdzoo'):
        return freeze(TEACHERS.build(cfg))


def teacher_forward(teacher: nn.Module, inputs, data_samples=None):
    """Run a teacher for its features only: never its task loss."""
    if isinstance(teacher, BaseModel):
        return teacher(inputs, data_samples, mode='tensor')
    return teacher(inputs)
