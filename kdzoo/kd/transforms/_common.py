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
    """A random transform whose student and teacher calls share one random draw.

    A distill term applies the transform twice per step, first to the student tensor and
    then to the teacher tensor. The first call draws a mask and keeps it as *pending*; the
    next call with the same mask shape reuses it and clears it, so both tensors are masked
    identically and the following step draws afresh. A call whose shape does not match the
    pending mask draws a new one (and keeps that one pending). Only active in training mode;
    in eval mode the transform is the identity. Draws use the global torch RNG, so
    ``torch.manual_seed`` makes them reproducible.
    """
    stochastic = True

    def __init__(self):
        super().__init__()
        self._pending: Optional[torch.Tensor] = None

    def reset(self) -> None:
        """Forget the pending mask (the next call starts a new student/teacher pair)."""
        self._pending = None

    def train(self, mode: bool = True):
        self.reset()
        return super().train(mode)

    def sample_mask(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # abstract

    def mask_shape(self, x: torch.Tensor) -> Tuple[int, ...]:
        raise NotImplementedError  # abstract

    def paired_mask(self, x: torch.Tensor) -> torch.Tensor:
        pending = self._pending
        if (pending is not None and tuple(pending.shape) == self.mask_shape(x)
                and pending.device == x.device):
            self._pending = None
            return pending.to(x.dtype)
        mask = self.sample_mask(x)
        self._pending = mask
        return mask


def reduce_dims_except(x: torch.Tensor, keep: int) -> Tuple[int, ...]:
    """All dims of ``x`` except ``keep``."""
    return tuple(d for d in range(x.dim()) if d != keep)


def channel_view(vec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-channel vector ``(C,)`` to broadcast against ``x`` of shape (N, C, ...)."""
    return vec.view(1, -1, *([1] * (x.dim() - 2)))
