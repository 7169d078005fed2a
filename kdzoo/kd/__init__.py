from . import distances, transforms  # noqa: F401  (registers the library)
from .base import (FAMILIES, Distance, KnowledgeTransform, build_distance, build_transform,
                   check_chain, registered)
from .term import DistillTerm

__all__ = [
    'FAMILIES', 'KnowledgeTransform', 'Distance', 'build_transform', 'build_distance',
    'check_chain', 'registered', 'DistillTerm'
]
