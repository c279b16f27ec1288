"""Connections to the SQLite index file: a small pool shared by threads, the writer lock file
that writers of every thread and process take turns on, and SQLite's failures as
:class:`IndexUnavailable`.

Index loss: the pool remembers which file (device and inode) its connections have open and
compares it with what the path names now (one ``stat`` before lending a connection and one after
each commit, a few µs against an upsert's hundreds). A file removed under a running service makes
every call raise :class:`IndexUnavailable` (a write committed into the removed file is reported as
failed, never as done) until a file is back at the path, restored or made by ``openjip index
rebuild``; then the pool drops its old connections and opens the new file. SQLite itself sees that
the old file moved and leaves the new one's WAL alone when those connections close.

Concurrency: WAL journal, every write in ``BEGIN IMMEDIATE`` (takes the write lock up front, so
the busy timeout applies instead of a read-to-write upgrade failing at once), writers taking
turns on a lock file first (:class:`WriterLock`), a busy timeout for writers that do not, and a
small pool of connections so that each thread uses its own while it runs and short-lived threads
(one per DICOM association) do not pile up connections.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from openjip.index.base import IndexUnavailable
from openjip.index.sqlite.schema import prepare

BUSY_TIMEOUT_SECONDS = 30.0
"""How long a writer waits for the write lock held by other threads or processes."""
IDLE_CONNECTIONS = 8
"""Connections kept open for reuse; more may be open while more threads work at once."""

_T = TypeVar("_T")

FileId = tuple[int, int]
"""Device and inode of a file: what stays the same while it is the same file."""


@dataclass(frozen=True)
class _Lent:
    """A pooled connection and the file it has open."""

    conn: sqlite3.Connection
    file: FileId


class ConnectionPool:
    """Connections to one SQLite file, lent to one thread per operation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._closed = False
        self._file: FileId | None = None
        """The file the pool's connections open; ``None`` until one is opened."""
        self._opened_before = False
        """Whether this pool ever opened the file (then it never creates one)."""
        self._left_in_parent: list[_Lent] = []
        self._start_afresh()

    def _start_afresh(self) -> None:
        self._lock = threading.Lock()
        self._writer = WriterLock(self.path.with_name(self.path.name + "-writer.lock"))
        self._idle: list[_Lent] = []

    def restart_in_child(self) -> None:
        """After fork(), in the child: SQLite connections must not cross fork(), and locks held
        by other threads of the parent would never be released. The parent's connections stay
        referenced (closing them here could disturb the parent's locks on the file)."""
        self._left_in_parent += self._idle
        self._writer.close()
        self._start_afresh()

    def write(self, work: Callable[[sqlite3.Cursor], _T]) -> _T:
        """Run ``work`` in one write transaction and commit it."""
        with self._connection() as lent, _unavailable_on_error(self.path), self._writer.held():
            conn = lent.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn.cursor())
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        # The file may have gone while the transaction ran: then nothing was written to the
        # index that the path names, and the caller must not report it stored.
        if _file_at(self.path) != lent.file:
            raise IndexUnavailable(
                f"index file {self.path} was removed or replaced during a write;"
                " the write is not in the index"
            )
        return result

    def read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of one query."""
        with self._connection() as lent, _unavailable_on_error(self.path):
            return lent.conn.execute(sql, params).fetchall()

    def check(self) -> None:
        """Open the file and take (and release) the write lock, or raise IndexUnavailable."""
        with self._connection() as lent, _unavailable_on_error(self.path):
            lent.conn.execute("BEGIN IMMEDIATE")
            lent.conn.execute("ROLLBACK")

    def close(self) -> None:
        """Close every pooled connection; later calls raise IndexUnavailable."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for lent in idle:
            lent.conn.close()

    @contextmanager
    def _connection(self) -> Iterator[_Lent]:
        """Lend a connection to the calling thread for one operation."""
        with self._lock:
            if self._closed:
                raise IndexUnavailable(f"index {self.path} is closed")
            stale = self._follow_file()
            lent = self._idle.pop() if self._idle else None
            create = not self._opened_before
        for old in stale:
            old.conn.close()
        if lent is None:
            lent = self._connect(create=create)
        try:
            yield lent
        finally:
            with self._lock:
                keep = (
                    not self._closed
                    and lent.file == self._file
                    and len(self._idle) < IDLE_CONNECTIONS
                )
                if keep:
                    self._idle.append(lent)
            if not keep:
                lent.conn.close()

    def _follow_file(self) -> list[_Lent]:
        """Compare the file the path names with the one the pool opened (holding the lock);
        return the idle connections to drop when the file was replaced."""
        if self._file is None:
            return []  # nothing opened yet: the first connection creates the file
        now = _file_at(self.path)
        if now == self._file:
            return []
        if now is None:
            raise IndexUnavailable(
                f"index file {self.path} was removed; nothing is indexed until it is back"
                " (restore it, or run `openjip index rebuild`)"
            )
        stale, self._idle = self._idle, []
        self._file = None
        self._writer.reopen()  # its lock file may have been replaced with the index
        return stale

    def _connect(self, *, create: bool) -> _Lent:
        """A new connection; ``create`` only on first use, never again once this pool has seen
        the file (so that a removed file is not silently replaced by an empty one)."""
        with _unavailable_on_error(self.path):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # SQLite gives the WAL and shared-memory files the database file's mode.
                if not self.path.exists():
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
            except OSError as exc:
                raise IndexUnavailable(f"index folder {self.path.parent}: {exc}") from exc
            conn = sqlite3.connect(
                self.path.absolute().as_uri() + ("" if create else "?mode=rw"),
                uri=True,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
            )
            try:
                prepare(conn)
                opened = _file_at(self.path)
                if opened is None:
                    raise IndexUnavailable(f"index file {self.path} was removed")
            except BaseException:
                conn.close()
                raise
        with self._lock:
            self._opened_before = True
            if self._file is None:
                self._file = opened
        return _Lent(conn, opened)


class WriterLock:
    """Writers of every thread and process take turns here before SQLite's write lock.

    SQLite's busy handler retries after sleeping 1, 2, 5, 10, ... ms, however soon the lock is
    free again: with two receiver processes that added ~3 ms of waiting to every instance. A
    lock file (``flock``) wakes the next writer the moment the previous one is done. SQLite's
    own locking stays underneath, so a writer that skips this lock (the ``sqlite3`` shell,
    a folder where the lock file cannot be created) is still safe, only slower.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._reopen = False

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for one write transaction."""
        with self._threads:
            if self._reopen:
                self._reopen = False
                self.close()
            fd = self._open()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Let go of the lock file (a forked child must not share its parent's: flock locks
        belong to the open file, which both would hold)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def reopen(self) -> None:
        """Open the lock file afresh before the next write (the old one may have been removed:
        writers of other processes would take turns on a new one)."""
        self._reopen = True

    def _open(self) -> int | None:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:
                return None
        return self._fd


def _file_at(path: Path) -> FileId | None:
    """The device and inode of the file at ``path``; ``None`` if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexUnavailable(f"index file {path}: {exc}") from exc
    return st.st_dev, st.st_ino


@contextmanager
def _unavailable_on_error(path: Path) -> Iterator[None]:
    """Turn SQLite's operational failures (locked, unwritable, not a database) into
    IndexUnavailable; errors that mean a bug in this module stay what they are."""
    try:
        yield
    except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
        raise
    except sqlite3.DatabaseError as exc:
        raise IndexUnavailable(f"SQLite index {path}: {exc}") from exc
