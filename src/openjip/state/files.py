"""File walking, hashing and copying shared by backup and restore."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK_BYTES = 1024 * 1024
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as source:
            return source.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def walk(root: Path, skip: set[Path]) -> Iterator[Path]:
    """Regular files under ``root`` in a stable order: no hidden temporary files, no SQLite
    side files (the online backup copies what they hold), nothing under a ``skip`` folder."""
    for directory, subdirectories, names in os.walk(root):
        here = Path(directory)
        subdirectories[:] = sorted(d for d in subdirectories if here / d not in skip)
        for name in sorted(names):
            if name.startswith(".") or name.endswith(SQLITE_SIDE_FILES):
                continue
            path = here / name
            if path.is_file() and not path.is_symlink():
                yield path


class HashingReader(io.RawIOBase):
    """A readable stream over ``source`` that counts and hashes (sha256) what is read."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._digest.update(data)
        self.size += len(data)
        return data

    def readinto(self, buffer: WriteableBuffer) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def write_stream(source: BinaryIO, target: Path, mode: int) -> None:
    """Write ``source`` into ``target`` (atomically replaced, fsynced) with file mode ``mode``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as writer:
        while chunk := source.read(CHUNK_BYTES):
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    os.chmod(partial, mode)
    os.replace(partial, target)


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite file (online backup API, writers keep going)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    reader = sqlite3.connect(source.absolute().as_uri() + "?mode=ro", uri=True, timeout=30)
    writer = sqlite3.connect(partial)
    try:
        reader.backup(writer)
        # A single file with no WAL, so that the copy is one self-contained file.
        writer.execute("PRAGMA journal_mode = DELETE")
    finally:
        writer.close()
        reader.close()
    shutil.copymode(source, partial)
    os.replace(partial, target)
