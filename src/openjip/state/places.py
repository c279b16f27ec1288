"""Where a backup lives: a folder, or a prefix in a bucket of an S3 server (``s3://BUCKET/PREFIX``).

Both are an :class:`~openjip.storage.ObjectStore` under a key prefix, so a backup is written and
read the same way wherever it is: a folder through the local store (files 0600, folders 0700,
each written whole and fsynced), a bucket through the S3 store (one atomic PUT per file). The
S3 server is the one of the backup settings (``OPENJIP_BACKUP__S3_*``), each unset field taking
the object store's value: by default a backup goes to another bucket of the site's own server.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from openjip.config import Settings
from openjip.storage import ObjectInfo, ObjectStore

S3_SCHEME = "s3://"


class PlaceError(ValueError):
    """A backup location that cannot be used; the message says why."""


@dataclass(frozen=True)
class Place:
    """Files of one backup: ``name`` is stored under ``prefix + name`` in ``store``."""

    store: ObjectStore
    prefix: str
    description: str
    folder: Path | None = None
    """The folder of a backup on disk (None in S3)."""

    def put(self, name: str, data: bytes | BinaryIO) -> None:
        self.store.put(self.prefix + name, data)

    def open(self, name: str) -> BinaryIO:
        return self.store.open(self.prefix + name)

    def head(self, name: str) -> ObjectInfo | None:
        return self.store.head(self.prefix + name)

    def delete(self, name: str) -> None:
        self.store.delete(self.prefix + name)

    def list(self, under: str) -> Iterator[tuple[str, int]]:
        """(name, size) of every file whose name starts with ``under``."""
        for info in self.store.list(self.prefix + under):
            yield info.key[len(self.prefix) :], info.size


def open_place(settings: Settings, where: str | Path) -> Place:
    """The backup location ``where``: ``s3://BUCKET[/PREFIX]`` or a folder path."""
    text = str(where)
    if not text.startswith(S3_SCHEME):
        from openjip.storage.local import LocalObjectStore

        folder = Path(text).expanduser().absolute()
        return Place(LocalObjectStore(folder), "", str(folder), folder)
    bucket, _, prefix = text[len(S3_SCHEME) :].partition("/")
    prefix = prefix.strip("/")
    if not bucket:
        raise PlaceError(f"{text}: no bucket named (s3://BUCKET/PREFIX)")
    from openjip.storage.s3 import S3ObjectStore

    backup = settings.backup
    overrides: dict[str, object] = {"backend": "s3", "s3_bucket": bucket}
    if backup.s3_endpoint:
        overrides["s3_endpoint"] = backup.s3_endpoint
    if backup.s3_access_key:
        overrides["s3_access_key"] = backup.s3_access_key
    if backup.s3_secret_key.get_secret_value():
        overrides["s3_secret_key"] = backup.s3_secret_key
    if backup.s3_secure is not None:
        overrides["s3_secure"] = backup.s3_secure
    if backup.s3_region is not None:
        overrides["s3_region"] = backup.s3_region
    storage = settings.storage.model_copy(update=overrides)
    if (storage.s3_endpoint, storage.s3_bucket) == (
        settings.storage.s3_endpoint,
        settings.storage.s3_bucket,
    ) and settings.storage.backend == "s3":
        raise PlaceError(f"{text}: that is the site's own bucket; back up into another bucket")
    store = S3ObjectStore.from_settings(storage)
    return Place(store, f"{prefix}/" if prefix else "", f"{text} on {storage.s3_endpoint}")
