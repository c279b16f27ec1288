"""Choosing the object-store backend from the settings."""

from __future__ import annotations

from openjip.config import Settings
from openjip.storage.base import ObjectStore


def open_store(settings: Settings) -> ObjectStore:
    """Return the object store the settings describe."""
    if settings.storage.backend == "s3":
        from openjip.storage.s3 import S3ObjectStore

        remote = S3ObjectStore.from_settings(settings.storage)
        if not settings.storage.s3_cache:
            return remote
        from openjip.storage.cached import CachedObjectStore

        return CachedObjectStore(
            remote,
            (settings.storage.s3_cache_path or settings.home_dir / "s3-cache").expanduser(),
            uploaders=settings.storage.s3_upload_workers,
            fsync=settings.storage.fsync,
            defer_bytes=settings.storage.s3_upload_defer_mib << 20,
        )
    from openjip.storage.local import LocalObjectStore

    return LocalObjectStore(
        settings.storage_path,
        fsync=settings.storage.fsync,
        temp_max_age_seconds=settings.storage.temp_max_age_seconds,
    )
