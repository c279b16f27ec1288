"""The local object store: one file per object under a root directory.

An object ``dicom/1.2/3.4/5.6.dcm`` lives in ``<root>/dicom/1.2/3.4/5.6.dcm``. Writes go to a
temporary file in the object's own directory, are flushed to disk, then renamed over the final
name, so readers see a whole object or none and a crash leaves at most an unlisted temporary
file, removed once older than ``temp_max_age_seconds`` when a store writes into its directory
again, or by :meth:`sweep_temporary_files`. This store sits on the DICOM receiver's hot path: it
uses plain ``os`` calls on string paths and remembers which directories it has already created.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from openjip.storage.base import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    StoreUnavailable,
    check_key,
)

# '~' can never appear in a key, so a temporary file can never be mistaken for an object.
_TEMP_MARK = "~tmp~"
_KEY_COMPONENT = re.compile(r"[A-Za-z0-9._\-=+@]+")
_CHUNK = 1 << 20
TEMP_MAX_AGE_SECONDS = 3600.0
"""Default age after which a temporary file counts as left by a killed write."""

# Errors that mean "the store cannot take data now"; the name goes into the message.
_UNAVAILABLE_REASONS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "I/O error",
}


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root``; with ``fsync`` every put is on disk before it returns.

    One limit S3 does not have: a key cannot also be a prefix of other keys ("a" and "a/b"),
    since one path cannot be a file and a directory; such a put raises :class:`InvalidKey`.
    openjip's own keys never clash this way.
    """

    def __init__(
        self,
        root: Path,
        *,
        fsync: bool = True,
        temp_max_age_seconds: float = TEMP_MAX_AGE_SECONDS,
    ) -> None:
        self.root = Path(root).absolute()
        self.fsync = fsync
        self.temp_max_age_seconds = temp_max_age_seconds
        self._root = os.fspath(self.root)
        self._known_dirs: set[str] = set()
        self._temp_counter = itertools.count()

    def __repr__(self) -> str:
        return f"LocalObjectStore({self._root!r}, fsync={self.fsync})"

    # -- writing -------------------------------------------------------------------------

    def put(self, key: str, data: bytes | BinaryIO) -> ObjectInfo:
        """Write ``data`` to a temporary file, flush it, and rename it to the key's file."""
        if isinstance(data, bytes | bytearray | memoryview):
            return self._write_new(key, self._path(key), lambda fd: _write_all(fd, data))

        def copy_stream(fd: int) -> None:
            while chunk := data.read(_CHUNK):
                _write_all(fd, chunk)

        return self._write_new(key, self._path(key), copy_stream)

    def put_file(self, key: str, path: Path, *, move: bool = False) -> ObjectInfo:
        """Store the file at ``path``; with ``move`` rename it into place when on one disk."""
        target = self._path(key)
        source = os.fspath(path)
        if move:
            info = self._flush_file(source)
            try:
                self._move_in(source, target)
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise self._error(error, "move into the store", key) from error
            else:
                self._sync_dir(os.path.dirname(target), key)
                return ObjectInfo(key, info.st_size, _mtime(info))
        stored = self._copy_in(key, target, source)
        if move:
            _remove_quietly(source)
        return stored

    def delete(self, key: str) -> None:
        """Remove the object's file and the directories it leaves empty."""
        path = self._path(key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as error:
            raise self._error(error, "delete", key) from error
        directory = os.path.dirname(path)
        self._sync_dir(directory, key)
        self._prune(directory)

    # -- reading -------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        """Return the object's bytes."""
        with self.open(key) as stream:
            try:
                return stream.read()
            except OSError as error:
                raise self._error(error, "read", key) from error

    def open(self, key: str) -> BinaryIO:
        """Open the object's file for reading."""
        path = self._path(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as error:
            raise ObjectNotFound(key) from error
        except OSError as error:
            raise self._error(error, "read", key) from error

    def head(self, key: str) -> ObjectInfo | None:
        """Describe the object from its file's size and modification time."""
        try:
            info = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            raise self._error(error, "stat", key) from error
        if not stat.S_ISREG(info.st_mode):
            return None
        return ObjectInfo(key, info.st_size, _mtime(info))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Walk the directories under ``prefix`` in key order, skipping temporary files."""
        directory, _, name_prefix = prefix.rpartition("/")
        if prefix.startswith("/"):
            return  # no key starts with "/"
        if directory:
            try:
                check_key(directory)
            except InvalidKey:
                return  # no valid key starts with this prefix
        start = os.path.join(self._root, directory) if directory else self._root
        key_prefix = f"{directory}/" if directory else ""
        try:
            yield from self._walk(start, key_prefix, name_prefix)
        except OSError as error:
            raise self._error(error, "list", prefix) from error

    def sweep_temporary_files(self) -> int:
        """Remove, in the whole store, the temporary files of writes that never finished
        (older than ``temp_max_age_seconds``); return how many were removed."""
        return sum(self._sweep(directory, files) for directory, _, files in os.walk(self._root))

    def check(self) -> None:
        """Create the root if needed and prove a file can be written, flushed and removed."""
        probe = os.path.join(self._root, f".check{self._temp_suffix()}")
        try:
            os.makedirs(self._root, exist_ok=True)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                _write_all(fd, b"openjip")
                if self.fsync:
                    os.fdatasync(fd)
            finally:
                os.close(fd)
            os.unlink(probe)
        except OSError as error:
            _remove_quietly(probe)
            raise self._error(error, "write", "") from error

    # -- internals -----------------------------------------------------------------------

    def _path(self, key: str) -> str:
        check_key(key)
        return os.path.join(self._root, key)

    def _temp_suffix(self) -> str:
        return f"{_TEMP_MARK}{os.getpid()}-{next(self._temp_counter)}"

    def _open_temp(self, key: str, path: str) -> tuple[str, int]:
        """Create a fresh temporary file next to ``path``, creating its directory if needed."""
        directory, name = os.path.split(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        for _ in range(5):
            temp = os.path.join(directory, f".{name}{self._temp_suffix()}")
            try:
                self._ensure_dir(directory)
                return temp, os.open(temp, flags, 0o600)
            except FileExistsError:
                continue  # a temporary file left by a crashed process whose pid we now have
            except FileNotFoundError:
                # Another store instance deleted the directory's last object and pruned it
                # after we created it: forget it and create it again.
                self._known_dirs.discard(directory)
            except OSError as error:
                raise self._error(error, "write", key) from error
        raise StoreUnavailable(f"local store {self._root}: cannot create a file in {directory}")

    def _move_in(self, source: str, target: str) -> None:
        """Rename ``source`` to ``target``, creating its directory again if another store
        instance pruned it after we created it."""
        directory = os.path.dirname(target)
        for _ in range(4):
            self._ensure_dir(directory)
            try:
                os.rename(source, target)
                return
            except FileNotFoundError:
                if not os.path.exists(source):
                    raise
                self._known_dirs.discard(directory)
        self._ensure_dir(directory)
        os.rename(source, target)

    def _ensure_dir(self, directory: str) -> None:
        """Create ``directory`` and missing parents, each made durable in its parent."""
        if directory in self._known_dirs:
            return
        if directory == self._root:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        else:
            parent = os.path.dirname(directory)
            try:
                created = self._mkdir(directory)
            except FileNotFoundError:
                self._known_dirs.discard(parent)
                self._ensure_dir(parent)
                created = self._mkdir(directory)
            if created:
                self._sync_dir_raw(parent)
            else:  # a directory written before, maybe by a process killed during a put
                with contextlib.suppress(OSError):
                    self._sweep(directory, os.listdir(directory))
        self._known_dirs.add(directory)

    @staticmethod
    def _mkdir(directory: str) -> bool:
        """Create one directory; False when it already exists."""
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError as error:
            if not os.path.isdir(directory):
                raise NotADirectoryError(errno.ENOTDIR, "an object has this name") from error
            return False
        return True

    def _sync_dir(self, directory: str, key: str) -> None:
        try:
            self._sync_dir_raw(directory)
        except OSError as error:
            raise self._error(error, "flush the directory of", key) from error

    def _sync_dir_raw(self, directory: str) -> None:
        if not self.fsync:
            return
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _flush_file(self, path: str) -> os.stat_result:
        """Make a file about to be renamed into the store private (0600) and durable; return
        its stat."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fchmod(fd, 0o600)
                if self.fsync:
                    os.fsync(fd)
                return os.fstat(fd)
            finally:
                os.close(fd)
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror}") from error

    def _copy_in(self, key: str, target: str, source: str) -> ObjectInfo:
        """Copy ``source`` into the store as ``key`` through a temporary file."""
        try:
            source_fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            raise StorageError(f"cannot read {source}: {error.strerror}") from error

        def copy_file(fd: int) -> None:
            size = os.fstat(source_fd).st_size
            copied = 0
            while copied < size and (sent := os.sendfile(fd, source_fd, copied, size - copied)):
                copied += sent

        try:
            return self._write_new(key, target, copy_file)
        finally:
            os.close(source_fd)

    def _write_new(self, key: str, path: str, fill: Callable[[int], None]) -> ObjectInfo:
        """Have ``fill`` write a temporary file, flush it, rename it to ``path``: all or nothing."""
        temp, fd = self._open_temp(key, path)
        try:
            try:
                fill(fd)
                if self.fsync:
                    os.fdatasync(fd)
                info = os.fstat(fd)
            finally:
                os.close(fd)
            os.rename(temp, path)
        except OSError as error:
            _remove_quietly(temp)
            raise self._error(error, "write", key) from error
        except BaseException:
            _remove_quietly(temp)
            raise
        self._sync_dir(os.path.dirname(path), key)
        return ObjectInfo(key, info.st_size, _mtime(info))

    def _sweep(self, directory: str, names: Iterable[str]) -> int:
        """Remove the stale temporary files among ``names`` in ``directory``, best effort."""
        cutoff = time.time() - self.temp_max_age_seconds
        removed = 0
        for name in names:
            if _TEMP_MARK not in name:
                continue  # an object or a directory: no key holds '~'
            path = os.path.join(directory, name)
            with contextlib.suppress(OSError):  # gone meanwhile: renamed into place, or swept
                info = os.lstat(path)
                if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                    os.unlink(path)
                    removed += 1
        return removed

    def prune(self, key: str) -> None:
        """Remove the directories of ``key`` that are empty, up to (not including) the root."""
        self._prune(os.path.dirname(self._path(key)))

    def _prune(self, directory: str) -> None:
        """Remove empty directories from ``directory`` up to (not including) the root."""
        while len(directory) > len(self._root):
            self._known_dirs.discard(directory)
            try:
                os.rmdir(directory)
            except OSError:
                return  # not empty (or already gone): the usual way this loop ends
            directory = os.path.dirname(directory)

    def _walk(self, directory: str, key_prefix: str, name_prefix: str) -> Iterator[ObjectInfo]:
        try:
            with os.scandir(directory) as scan:
                entries = list(scan)
        except (FileNotFoundError, NotADirectoryError):
            return
        # A directory "a" holds keys "a/...": sorting it as "a/" puts it where its keys belong
        # among sibling files ("a-b" < "a/c" < "a0"), so the walk yields keys in key order.
        ordered: list[tuple[str, os.DirEntry[str]]] = []
        for entry in entries:
            name = entry.name
            # Temporary files carry '~', which no key holds, so the pattern skips them.
            if not name.startswith(name_prefix) or not _KEY_COMPONENT.fullmatch(name):
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            ordered.append((f"{name}/" if is_dir else name, entry))
        ordered.sort(key=lambda item: item[0])
        for sort_name, entry in ordered:
            if sort_name.endswith("/"):
                yield from self._walk(entry.path, key_prefix + sort_name, "")
            elif entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                yield ObjectInfo(key_prefix + sort_name, info.st_size, _mtime(info))

    def _error(self, error: OSError, action: str, key: str) -> StorageError:
        """Turn an OS error into the store error callers handle, with a readable reason."""
        code = error.errno
        if code == errno.ENAMETOOLONG:
            return InvalidKey(f"object key too long for the local store: {key!r}")
        if key and code in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
            return InvalidKey(f"object key {key!r} clashes with an existing object or prefix")
        reason = _UNAVAILABLE_REASONS.get(code or 0) or error.strerror or str(error)
        name = errno.errorcode.get(code or 0, "unknown error")
        target = f" {key!r}" if key else ""
        return StoreUnavailable(
            f"local store {self._root}: cannot {action}{target}: {reason} ({name})"
        )


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _mtime(info: os.stat_result) -> datetime:
    return datetime.fromtimestamp(info.st_mtime, tz=UTC)


def _remove_quietly(path: str) -> None:
    """Remove a leftover temporary file, best effort: the error that made it one matters more."""
    with contextlib.suppress(OSError):
        os.unlink(path)
