"""File walking, hashing and copying shared by backup and restore."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

CHUNK_BYTES = 1024 * 1024
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


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


def copy_file(source: Path, target: Path) -> str:
    """Copy ``source`` to ``target`` (atomically replaced, fsynced, mode kept); its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    digest = hashlib.sha256()
    with source.open("rb") as reader, partial.open("wb") as writer:
        while chunk := reader.read(CHUNK_BYTES):
            digest.update(chunk)
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    shutil.copystat(source, partial)
    os.replace(partial, target)
    return digest.hexdigest()


def copy_sqlite(source: Path, target: Path) -> str:
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
    return sha256_of(target)
