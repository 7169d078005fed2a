"""timm and torchvision networks as kdzoo architectures.

``dict(type='TimmModel', model_name='resnet18', num_classes=10, in_channels=1)`` and
``dict(type='TorchvisionModel', name='resnet18', num_classes=10, in_channels=1)`` build the
plain timm / torchvision network. Nothing is downloaded: pretrained weights must be a local
file (``pretrained_path`` / ``weights``), or the config's ``checkpoint`` must provide them.
"""
import difflib
import os
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from kdzoo.registry import ARCHITECTURES

__all__ = ['TimmModel', 'TorchvisionModel', 'adapt_conv_weight', 'replace_first_conv']


def _unknown_name(kind: str, name: str, valid: List[str], listing: str) -> KeyError:
    close = difflib.get_close_matches(name, valid, n=8, cutoff=0.5)
    if not close:
        close = [v for v in valid if name.lower() in v.lower()][:8]
    hint = f'Did you mean one of: {", ".join(close)}?' if close else 'No close names.'
    return KeyError(f'unknown {kind} model {name!r}. {hint} List all names with {listing}.')


# --- timm ---------------------------------------------------------------------------------


@ARCHITECTURES.register_module(name='TimmModel')
def TimmModel(model_name: str,
              num_classes: int,
              in_channels: int = 3,
              pretrained: bool = False,
              pretrained_path: Optional[str] = None,
              **kwargs) -> nn.Module:
    """``timm.create_model(model_name, num_classes=..., in_chans=in_channels, **kwargs)``.

    Args:
        model_name: a timm architecture, optionally with a pretrained tag
            (``'resnet18.a1_in1k'``).
        num_classes: number of logits.
        in_channels: image channels (timm's ``in_chans``).
        pretrained: load pretrained weights; they must come from a local file,
            ``pretrained_path`` (or ``checkpoint_path``). timm adapts them: a classifier of
            another size is re-initialised and the stem is adapted to ``in_channels``.
        pretrained_path: local weights file for ``pretrained=True`` (implies it).
        **kwargs: passed to ``timm.create_model`` (``drop_rate``, ``checkpoint_path`` for a
            strict load of a full checkpoint of this exact network, ...).
    """
    import timm

    if ':' not in model_name and not timm.is_model(model_name):
        raise _unknown_name('timm', model_name, timm.list_models(), 'timm.list_models()')
    if pretrained_path is None and pretrained:
        pretrained_path = kwargs.pop('checkpoint_path', None)
    if pretrained_path is not None:
        if not os.path.isfile(pretrained_path):
            raise FileNotFoundError(
                f'TimmModel({model_name!r}): pretrained weights file {pretrained_path!r} does '
                f'not exist')
        overlay = dict(kwargs.pop('pretrained_cfg_overlay', None) or {})
        overlay.update(file=os.fspath(pretrained_path), source='')
        kwargs.update(pretrained=True, pretrained_cfg_overlay=overlay)
    elif pretrained:
        raise ValueError(
            f'TimmModel({model_name!r}, pretrained=True): pretrained weights cannot be '
            f'downloaded here. Save the weights to a local file and pass '
            f'pretrained_path=FILE, or set pretrained=False and give the weights as the '
            f"config's checkpoint (e.g. teacher=dict(..., checkpoint=FILE)).")
    else:
        kwargs['pretrained'] = False
    return timm.create_model(model_name, num_classes=num_classes, in_chans=in_channels,
                             **kwargs)


# --- torchvision --------------------------------------------------------------------------


def _parent_and_name(model: nn.Module, path: str) -> Tuple[nn.Module, str]:
    parent_path, _, name = path.rpartition('.')
    return (model.get_submodule(parent_path) if parent_path else model), name


def adapt_conv_weight(weight: torch.Tensor, in_channels: int,
                      pretrained: bool = True) -> torch.Tensor:
    """A conv kernel ``(O, I, k, k)`` for ``in_channels`` inputs instead of ``I``.

    Pretrained kernels are adapted as timm does (summed for one channel, else cycled and
    rescaled by ``I / in_channels``); random ones by taking or cycling channels, which keeps
    the init's per-weight distribution.
    """
    if pretrained and in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // weight.shape[1])
    new = weight.repeat(1, repeats, 1, 1)[:, :in_channels]
    return new * (weight.shape[1] / in_channels) if pretrained else new


def replace_first_conv(model: nn.Module, in_channels: int,
                       expected_in: int = 3) -> Optional[str]:
    """Replace the first ``Conv2d`` taking ``expected_in`` channels by one taking
    ``in_channels`` (its kernel from :func:`adapt_conv_weight` of the random init); return
    its module path (None when there is nothing to do)."""
    if in_channels == expected_in:
        return None
    for path, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == expected_in:
            break
    else:
        raise ValueError(f'{type(model).__name__} has no Conv2d with {expected_in} input '
                         f'channels to adapt to in_channels={in_channels}; set '
                         f'in_channels={expected_in} and give it {expected_in}-channel inputs')
    if module.groups != 1:
        raise ValueError(f'cannot adapt the grouped first conv {path!r} to in_channels='
                         f'{in_channels}; set in_channels={expected_in} and give it '
                         f'{expected_in}-channel inputs')
    conv = nn.Conv2d(in_channels, module.out_channels, module.kernel_size, module.stride,
                     module.padding, module.dilation, 1, module.bias is not None,
                     module.padding_mode)
    with torch.no_grad():
        conv.weight.copy_(adapt_conv_weight(module.weight, in_channels, pretrained=False))
        if module.bias is not None:
            conv.bias.copy_(module.bias)
    parent, name = _parent_and_name(model, path)
    setattr(parent, name, conv)
    return path


def _read_state_dict(path: str, owner: str) -> Dict[str, torch.Tensor]:
    """A state dict from a local file: plain, MMEngine / distiller checkpoint (via
    :func:`kdzoo.models.checkpoint.read_state_dict`), ``{'model': ...}``, or of a kdzoo
    ``ImageClassifier`` (keys under ``backbone.``)."""
    from kdzoo.models.checkpoint import read_state_dict
    state = read_state_dict(path, owner)
    if isinstance(state.get('model'), dict):
        state = state['model']
    for prefix in ('module.', 'backbone.'):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _load_local_weights(model: nn.Module, path: str, owner: str,
                        first_conv: Optional[str] = None) -> List[str]:
    """Load ``path`` into ``model``; keys of another shape (the classifier for another
    number of classes) are skipped and returned; any other mismatch raises. The kernel of
    ``first_conv`` (a replaced stem) is adapted when the file has another channel count."""
    state = _read_state_dict(path, owner)
    own = model.state_dict()
    key = f'{first_conv}.weight'
    if first_conv is not None and key in state and state[key].dim() == 4:
        in_channels = own[key].shape[1]
        if state[key].shape[1] != in_channels:
            state[key] = adapt_conv_weight(state[key], in_channels, pretrained=True)
    skipped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    result = model.load_state_dict({k: v for k, v in state.items() if k not in skipped},
                                   strict=False)
    missing = [k for k in result.missing_keys if k not in skipped]
    if missing or result.unexpected_keys:
        raise KeyError(f'{owner}: weights {path!r} do not match the network: missing keys '
                       f'{missing[:10]}, unexpected keys {result.unexpected_keys[:10]}')
    if skipped:
        from mmengine.logging import print_log
        print_log(f'{owner}: re-initialised {skipped} (shape differs from {path!r})',
                  logger='current')
    return skipped


@ARCHITECTURES.register_module(name='TorchvisionModel')
def TorchvisionModel(name: str,
                     num_classes: int,
                     in_channels: int = 3,
                     weights: Optional[str] = None,
                     **kwargs) -> nn.Module:
    """``torchvision.models.get_model(name, weights=None, num_classes=num_classes)``.

    Args:
        name: a torchvision model name (``torchvision.models.list_models()``).
        num_classes: number of logits.
        in_channels: image channels; for other than 3, the first 3-channel conv is replaced.
        weights: None (random init) or a local weights file (a state dict, or a checkpoint
            with ``state_dict`` / ``model``); torchvision weight names (``'DEFAULT'``,
            ``'IMAGENET1K_V1'``) cannot be downloaded here. A classifier of another size is
            re-initialised.
        **kwargs: passed to ``get_model`` (e.g. ``aux_logits=False``).

    Sets ``num_classes`` and ``num_features`` (inputs of the last Linear) on the model.
    """
    import torchvision

    valid = torchvision.models.list_models()
    if name not in valid:
        raise _unknown_name('torchvision', name, valid, 'torchvision.models.list_models()')
    if weights is not None and not (isinstance(weights, (str, os.PathLike))
                                    and os.path.isfile(weights)):
        raise ValueError(
            f'TorchvisionModel({name!r}, weights={weights!r}): torchvision weights cannot be '
            f'downloaded here. Pass weights=LOCAL_FILE (a state dict), or weights=None and '
            f"give the weights as the config's checkpoint (e.g. teacher=dict(..., "
            f'checkpoint=FILE)).')
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes,
                                         **kwargs)
    first_conv = replace_first_conv(model, in_channels)
    if weights is not None:
        _load_local_weights(model, os.fspath(weights), f'TorchvisionModel({name!r})',
                            first_conv)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not hasattr(model, 'num_classes'):
        model.num_classes = num_classes
    if linears and not hasattr(model, 'num_features'):
        model.num_features = linears[-1].in_features
    return model
