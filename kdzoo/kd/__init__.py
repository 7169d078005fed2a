from . import distances, transforms  # noqa: F401  (registers the library)
from .base import (FAMILIES, Distance, EpsMixin, KnowledgeTransform, aliases, build_distance,
                   build_transform, check_chain, register_variants, registered)
from .term import TERM_KEYS, DistillTerm

__all__ = [
    'FAMILIES', 'KnowledgeTransform', 'Distance', 'build_transform', 'build_distance',
    'check_chain', 'registered', 'aliases', 'register_variants', 'EpsMixin', 'DistillTerm',
    'TERM_KEYS'
]
