"""Shared helpers of the distance library."""
from ..base import Distance


class LibraryDistance(Distance):
    """Base of the distances shipped with kdzoo: adds documentation metadata.

    Extra class attribute (also returned by :meth:`metadata`):
        source: the method / paper the distance comes from.
    """
    source: str = ''

    @classmethod
    def metadata(cls) -> dict:
        meta = super().metadata()
        meta.update(source=cls.source)
        return meta
