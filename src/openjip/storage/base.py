"""The ObjectStore interface: a flat namespace of keys holding whole, immutable objects.

Keys look like S3 keys (``dicom/<study>/<series>/<sop>.dcm``). ``put`` is all or nothing:
once it returns, the object is durable and readers see either all of it or none of it.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._\-=+@]+(/[A-Za-z0-9._\-=+@]+)*$")


class StorageError(Exception):
    """Any failure of the object store."""


class ObjectNotFound(StorageError, KeyError):
    """The key holds no object."""


class StoreUnavailable(StorageError):
    """The store cannot take or give data now (down, unreachable, disk full, read-only)."""


class InvalidKey(StorageError, ValueError):
    """The key is not a valid object key (empty, absolute, ``..``, odd characters)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows of one object."""

    key: str
    size: int
    modified: datetime


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid object key, raise :class:`InvalidKey` otherwise."""
    if not _KEY_PATTERN.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise InvalidKey(f"invalid object key: {key!r}")
    return key


class ObjectStore(abc.ABC):
    """Durable storage of whole objects under string keys."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes | BinaryIO) -> ObjectInfo:
        """Store ``data`` under ``key`` durably, replacing any object there, and describe it."""

    @abc.abstractmethod
    def put_file(self, key: str, path: Path, *, move: bool = False) -> ObjectInfo:
        """Store the file at ``path`` under ``key``; with ``move`` the file may be consumed."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """Return the whole object; :class:`ObjectNotFound` when there is none."""

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Return a readable binary stream of the object; the caller closes it."""

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Describe the object under ``key``, or ``None`` when there is none."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with ``prefix``, in key order."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; removing a missing key is not an error."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise :class:`StoreUnavailable` with a reason when the store cannot be used now."""

    def sweep_temporary_files(self) -> int:
        """Remove what writes that never finished left behind; return how many files.

        Only a backend that writes through temporary files has any (the local store)."""
        return 0

    def download(self, key: str, path: Path) -> None:
        """Copy the object into the file ``path`` (parents created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.open(key) as source, path.open("wb") as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
