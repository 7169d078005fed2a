"""The distance library: importing it registers every distance in ``DISTANCES`` (see
``docs/kd_library.md`` for the table)."""
from . import contrastive, correlation, divergence, dkd, feature, pointwise  # noqa: F401
from . import detection, relational  # noqa: F401
from ..base import Distance
from .correlation import linear_cka, pearson_rows
from .dkd import dkd_components

__all__ = ['Distance', 'linear_cka', 'pearson_rows', 'dkd_components']
