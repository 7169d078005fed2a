"""Where a teacher comes from. Each ``TEACHERS`` entry builds a frozen teacher model.

A distiller's ``teacher=`` accepts a dict (a ``TEACHERS`` or ``MODELS`` type) or a string:

- ``'timm/resnet50'`` / ``'torchvision/resnet18'``: a timm / torchvision network;
- a config file path (``.py``) or ``'mmdet::...'`` / ``'mmseg::...'``: the model of that
  config (for a distiller config, its student);
- any other string: a kdzoo architecture name, e.g. ``'resnet32x4'``.

The ``timm/``, ``torchvision/`` and architecture-name shorthands take ``num_classes`` and
``in_channels`` from the defaults given to :func:`build_teacher` (the :class:`Distiller` passes
the student's). Nothing is downloaded: these teachers start from a random init, and their
weights come from the ``checkpoint`` (the distiller's ``teacher_checkpoint``).

A relative config path is looked up relative to ``config_dir`` (the directory of the config
file the distiller was built from, set by the tools with :func:`set_config_dir`), else the
current directory, then relative to the kdzoo repository root; an error lists the places.

A ``checkpoint`` is loaded strictly, before training starts: a missing file or mismatched keys
raise an error that names the file and the keys.
"""
import copy
import inspect
import os
import os.path as osp
from typing import List, Optional, Tuple, Union

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


#: The kdzoo package, the repository around it (a source checkout or an editable install) and
#: the configs an installed package ships (``kdzoo/.mim/configs``, the OpenMMLab convention).
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
REPO_ROOT = osp.dirname(PACKAGE_DIR)
MIM_ROOT = osp.join(PACKAGE_DIR, '.mim')


def _config_roots() -> List[Tuple[str, str]]:
    """Where kdzoo's own configs live, as roots of ``configs/...`` paths: the repository
    root of a checkout, and ``kdzoo/.mim`` of an installed package."""
    roots = []
    if osp.isdir(osp.join(REPO_ROOT, 'configs')):
        roots.append(('the kdzoo repository root', REPO_ROOT))
    if osp.isdir(osp.join(MIM_ROOT, 'configs')):
        roots.append(("the installed kdzoo package's configs", MIM_ROOT))
    return roots


def resolve_config_path(config: str, config_dir: Optional[str] = None) -> str:
    """The file a teacher config path names.

    ``'mmdet::retinanet/x.py'``: that file in the installed package, as ``_base_`` does. An
    absolute path: itself. A relative path: relative to ``config_dir`` (the directory of the
    config file being built; without one, the current directory), then to the kdzoo
    repository root. A missing file raises an error listing every place looked in.
    """
    if '::' in config:
        from mmengine.config.utils import (_get_external_cfg_base_path,
                                           _get_package_and_cfg_path)
        from mmengine.utils import get_installed_path, is_installed
        package, rel_path = _get_package_and_cfg_path(config)
        if not is_installed(package):
            raise ModuleNotFoundError(f'{package} is not installed; the teacher config '
                                      f'{config} needs it')
        return _get_external_cfg_base_path(get_installed_path(package), rel_path)
    path = osp.expanduser(config)
    if osp.isabs(path):
        places = [('an absolute path', path)]
    else:
        bases = [("the config file's directory", config_dir)] if config_dir else \
            [('the current directory (no config file given)', os.getcwd())]
        places = [(label, osp.normpath(osp.join(base, path)))
                  for label, base in bases + _config_roots()]
    for _, candidate in places:
        if osp.isfile(candidate):
            return osp.abspath(candidate)
    looked = '\n'.join(f'  - {candidate} ({label})' for label, candidate in places)
    raise FileNotFoundError(
        f'teacher config {config!r} not found. Looked in:\n{looked}\nGive a path relative '
        f'to the config file that names it, relative to the kdzoo repository root '
        f"(e.g. 'configs/fashion_mnist/teacher_fmnist.py'), or an absolute path.")


@TEACHERS.register_module()
def ConfigTeacher(config: str, checkpoint: Optional[str] = None,
                  cfg_options: Optional[dict] = None,
                  config_dir: Optional[str] = None) -> nn.Module:
    """A teacher from a config file: a local path or ``mmdet::`` / ``mmseg::`` config.

    The model is built in the config's ``default_scope`` (e.g. ``mmdet``). For a distiller
    config, its student is the teacher (e.g. a distilled teacher assistant). A relative
    ``config`` is found as :func:`resolve_config_path` says.
    """
    cfg = Config.fromfile(resolve_config_path(config, config_dir))
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


def _needs_num_classes(teacher: str, example: str) -> ValueError:
    return ValueError(
        f'teacher {teacher!r} needs num_classes, and there is none to copy: the student has no '
        f'num_classes (it is not a classifier). Add the key: teacher={example}')


@TEACHERS.register_module()
def TimmTeacher(model_name: str, num_classes: Optional[int] = None, in_channels: int = 3,
                checkpoint: Optional[str] = None, data_preprocessor: Optional[dict] = None,
                **kwargs) -> nn.Module:
    """A timm network as a classifier teacher (``timm.create_model(model_name,
    num_classes=..., in_chans=in_channels, pretrained=False)``); its weights come from a
    local ``checkpoint`` (or ``pretrained_path``, adapted by timm)."""
    if num_classes is None:
        raise _needs_num_classes(f'timm/{model_name}', f"dict(type='TimmTeacher', model_name="
                                 f"{model_name!r}, num_classes=N, in_channels=C)")
    backbone = dict(type='TimmModel', model_name=model_name, num_classes=num_classes,
                    in_channels=in_channels, **kwargs)
    return ModelTeacher(_classifier(backbone, data_preprocessor), checkpoint)


@TEACHERS.register_module()
def TorchvisionTeacher(name: str, num_classes: Optional[int] = None, in_channels: int = 3,
                       checkpoint: Optional[str] = None,
                       data_preprocessor: Optional[dict] = None, **kwargs) -> nn.Module:
    """A torchvision network as a classifier teacher (``get_model(name, weights=None,
    num_classes=...)``, its first 3-channel conv replaced for other ``in_channels``); its
    weights come from a local ``checkpoint`` (or ``weights=FILE``, adapted)."""
    if num_classes is None:
        raise _needs_num_classes(f'torchvision/{name}', f"dict(type='TorchvisionTeacher', "
                                 f'name={name!r}, num_classes=N, in_channels=C)')
    backbone = dict(type='TorchvisionModel', name=name, num_classes=num_classes,
                    in_channels=in_channels, **kwargs)
    return ModelTeacher(_classifier(backbone, data_preprocessor), checkpoint)


#: Defaults that a shorthand (or a TEACHERS builder that takes them) fills in when missing.
SHAPE_KEYS = ('num_classes', 'in_channels')


def _takes(builder, key: str) -> bool:
    try:
        return key in inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return False


def _one_checkpoint(spec: dict, defaults: dict) -> None:
    given, default = spec.get('checkpoint'), defaults.get('checkpoint')
    if given is not None and default is not None and given != default:
        raise ValueError(f'the teacher checkpoint is given twice: teacher_checkpoint='
                         f"{default!r} and teacher['checkpoint']={given!r}; keep one")


def teacher_config(spec: Union[str, dict], config_dir: Optional[str] = None,
                   **defaults) -> dict:
    """Normalise the string shorthands into a ``TEACHERS`` config dict.

    ``defaults`` (``checkpoint``, ``num_classes``, ``in_channels``) fill what the spec leaves
    out: the shorthands take them all; a ``TEACHERS`` dict those its builder accepts; a
    config file only the checkpoint (its model says the rest).
    """
    defaults = {k: v for k, v in defaults.items() if v is not None}
    if isinstance(spec, dict):
        spec = dict(spec)
        TEACHERS.import_from_location()
        builder = TEACHERS.get(spec.get('type', ''))
        _one_checkpoint(spec, defaults)
        if builder is not None:
            for key, value in defaults.items():
                if key == 'checkpoint' or _takes(builder, key):
                    spec.setdefault(key, value)
            if config_dir and _takes(builder, 'config_dir'):
                spec.setdefault('config_dir', config_dir)
            return spec
        checkpoint = spec.pop('checkpoint', defaults.get('checkpoint'))
        return dict(type='ModelTeacher', model=spec, checkpoint=checkpoint)
    if not isinstance(spec, str):
        raise TypeError(f'teacher must be a string, a dict or an nn.Module, got '
                        f'{type(spec).__name__}')
    if spec.startswith('timm/'):
        return dict(type='TimmTeacher', model_name=spec[len('timm/'):], **defaults)
    if spec.startswith('torchvision/'):
        return dict(type='TorchvisionTeacher', name=spec[len('torchvision/'):], **defaults)
    if spec.endswith('.py') or '::' in spec:
        for key in SHAPE_KEYS:
            defaults.pop(key, None)
        cfg = dict(type='ConfigTeacher', config=spec, **defaults)
        if config_dir:
            cfg['config_dir'] = config_dir
        return cfg
    if '/' in spec or os.sep in spec:
        raise ValueError(
            f"teacher={spec!r} is not a teacher: use 'timm/<name>', 'torchvision/<name>', a "
            f"config file path ending in .py, 'mmdet::<config>' / 'mmseg::<config>', or a "
            f"kdzoo architecture name (e.g. 'resnet32x4')")
    checkpoint = defaults.pop('checkpoint', None)
    backbone = dict(type=spec, **defaults)
    return dict(type='ModelTeacher', model=_classifier(backbone, None), checkpoint=checkpoint)


def build_teacher(spec: Union[str, dict, nn.Module], config_dir: Optional[str] = None,
                  **defaults) -> nn.Module:
    """Build a frozen teacher from a module, a ``TEACHERS``/``MODELS`` dict or a shorthand.

    ``defaults`` and ``config_dir``: see :func:`teacher_config`."""
    if isinstance(spec, nn.Module):
        return freeze(spec)
    TEACHERS.import_from_location()
    cfg = teacher_config(spec, config_dir=config_dir, **defaults)
    if cfg['type'] == 'ModelTeacher':
        # A model dict is built in the run's scope (e.g. mmdet), like the student.
        current = DefaultScope.get_current_instance()
        cfg.setdefault('scope', current.scope_name if current else None)
    with DefaultScope.overwrite_default_scope('kdzoo'):
        return freeze(TEACHERS.build(cfg))


def set_config_dir(cfg: Config, config_file: Optional[str] = None) -> Config:
    """Anchor the relative teacher config paths of ``cfg.model`` at the directory of
    ``config_file`` (default: ``cfg.filename``), for a model that takes ``config_dir`` (the
    :class:`Distiller`); a ``config_dir`` the config already sets is kept. Returns ``cfg``.

    The tools call it right after ``Config.fromfile``, so ``teacher='teacher.py'`` in
    ``/my/kd.py`` means ``/my/teacher.py`` wherever the command runs.
    """
    model = cfg.get('model')
    config_file = config_file or cfg.filename
    if not isinstance(model, dict) or not config_file:
        return cfg
    model_type = model.get('type')
    MODELS.import_from_location()
    builder = MODELS.get(model_type) if isinstance(model_type, str) else model_type
    if builder is not None and _takes(builder, 'config_dir'):
        model.setdefault('config_dir', osp.dirname(osp.abspath(config_file)))
    return cfg


def teacher_forward(teacher: nn.Module, inputs, data_samples=None):
    """Run a teacher for its features only: never its task loss."""
    if isinstance(teacher, BaseModel):
        return teacher(inputs, data_samples, mode='tensor')
    return teacher(inputs)
