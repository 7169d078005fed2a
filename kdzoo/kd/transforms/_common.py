"""Shared helpers of the knowledge-transform library."""
from typing import Optional, Tuple

import torch

from ..base import KnowledgeTransform


class LazyBuffersMixin:
    """Buffers whose shape is only known at the first forward (or from a checkpoint).

    Buffers named in ``_lazy_buffers`` are created empty and resized *in place* (so any
    wrapper holding a reference to them, e.g. DDP, keeps a valid one). Loading a state dict
    resizes them to the saved shape before copying.
    """
    _lazy_buffers: Tuple[str, ...] = ()

    def _resize_buffer(self, name: str, shape) -> torch.Tensor:
        buf = self._buffers[name]
        if tuple(buf.shape) != tuple(shape):
            buf.resize_(tuple(shape))
        return buf

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        for name in self._lazy_buffers:
            key = prefix + name
            if key in state_dict and self._buffers.get(name) is not None:
                self._resize_buffer(name, state_dict[key].shape)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)


class PairedRandomTransform(KnowledgeTransform):
    """A random mask with keep probability ``ratio``; one draw serves student and teacher.

    :meth:`pair` draws one mask from the student tensor and multiplies both tensors by it
    (a teacher tensor whose mask shape differs from the student's gets its own draw).
    ``forward(x)`` on a single tensor draws a fresh mask. Only active in training mode (and
    for ``ratio < 1``); otherwise the identity. Draws use the global torch RNG, so
    ``torch.manual_seed`` makes them reproducible. Subclasses define the mask
    (:meth:`mask_shape`, :meth:`sample_mask`) and the default ``ratio``.
    """
    stochastic = True
    ratio: float = 0.5

    def __init__(self, ratio: Optional[float] = None):
        super().__init__()
        ratio = type(self).ratio if ratio is None else float(ratio)
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f'{type(self).__name__} keep ratio must be in (0, 1], got {ratio}')
        self.ratio = ratio

    def sample_mask(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # abstract

    def mask_shape(self, x: torch.Tensor) -> Tuple[int, ...]:
        raise NotImplementedError  # abstract

    @property
    def active(self) -> bool:
        return self.training and self.ratio < 1.0

    def transform(self, x):
        return x * self.sample_mask(x) if self.active else x

    def transform_pair(self, s, t):
        if not self.active:
            return s, t
        mask = self.sample_mask(s)
        if tuple(mask.shape) == self.mask_shape(t) and mask.device == t.device:
            t_mask = mask.to(t.dtype)
        else:
            t_mask = self.sample_mask(t)
        return s * mask, t * t_mask


def reduce_dims_except(x: torch.Tensor, keep: int) -> Tuple[int, ...]:
    """All dims of ``x`` except ``keep``."""
    return tuple(d for d in range(x.dim()) if d != keep)


def channel_view(vec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-channel vector ``(C,)`` to broadcast against ``x`` of shape (N, C, ...)."""
    return vec.view(1, -1, *([1] * (x.dim() - 2)))
