"""Choosing the object-store backend from the settings."""

from __future__ import annotations

from openjip.config import Settings
from openjip.storage.base import ObjectStore


def open_store(settings: Settings) -> ObjectStore:
    """Return the object store the settings describe."""
    if settings.storage.backend == "s3":
        from openjip.storage.s3 import S3ObjectStore

        return S3ObjectStore.from_settings(settings.storage)
    from openjip.storage.local import LocalObjectStore

    return LocalObjectStore(
        settings.storage_path,
        fsync=settings.storage.fsync,
        temp_max_age_seconds=settings.storage.temp_max_age_seconds,
    )
