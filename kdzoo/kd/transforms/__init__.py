"""The knowledge-transform library: importing it registers every transform in
``KD_TRANSFORMS`` (see ``docs/kd_library.md`` for the table)."""
from . import (attention, global_ops, inter_spatial, intra_spatial, kdep,  # noqa: F401
               relational, segmentation)
from ..base import KnowledgeTransform
from ._common import LazyBuffersMixin, PairedRandomTransform
from .kdep import SVDAlign

__all__ = ['KnowledgeTransform', 'LazyBuffersMixin', 'PairedRandomTransform', 'SVDAlign']
