"""Choosing the index backend from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from openjip.index.base import MetadataIndex

if TYPE_CHECKING:
    from openjip.config import Settings


def open_index(settings: Settings) -> MetadataIndex:
    """Return the metadata index the settings describe."""
    if settings.index.backend == "opensearch":
        from openjip.index.opensearch import OpenSearchIndex

        return OpenSearchIndex.from_settings(settings.index)
    from openjip.index.sqlite import SQLiteIndex

    return SQLiteIndex(settings.index_path)
