"""Connections to the SQLite index file: a small pool shared by threads, the writer lock file
that writers of every thread and process take turns on, and SQLite's failures as
:class:`IndexUnavailable`.

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
from pathlib import Path
from typing import Any, TypeVar

from openjip.index.base import IndexUnavailable
from openjip.index.sqlite.schema import prepare

BUSY_TIMEOUT_SECONDS = 30.0
"""How long a writer waits for the write lock held by other threads or processes."""
IDLE_CONNECTIONS = 8
"""Connections kept open for reuse; more may be open while more threads work at once."""

_T = TypeVar("_T")


class ConnectionPool:
    """Connections to one SQLite file, lent to one thread per operation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._closed = False
        self._left_in_parent: list[sqlite3.Connection] = []
        self._start_afresh()

    def _start_afresh(self) -> None:
        self._lock = threading.Lock()
        self._writer = WriterLock(self.path.with_name(self.path.name + "-writer.lock"))
        self._idle: list[sqlite3.Connection] = []

    def restart_in_child(self) -> None:
        """After fork(), in the child: SQLite connections must not cross fork(), and locks held
        by other threads of the parent would never be released. The parent's connections stay
        referenced (closing them here could disturb the parent's locks on the file)."""
        self._left_in_parent += self._idle
        self._writer.close()
        self._start_afresh()

    def write(self, work: Callable[[sqlite3.Cursor], _T]) -> _T:
        """Run ``work`` in one write transaction and commit it."""
        with self._connection() as conn, _unavailable_on_error(self.path), self._writer.held():
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn.cursor())
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

    def read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of one query."""
        with self._connection() as conn, _unavailable_on_error(self.path):
            return conn.execute(sql, params).fetchall()

    def check(self) -> None:
        """Open the file and take (and release) the write lock, or raise IndexUnavailable."""
        with self._connection() as conn, _unavailable_on_error(self.path):
            if not self.path.exists():
                raise IndexUnavailable(f"index file {self.path} was removed")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")

    def close(self) -> None:
        """Close every pooled connection; later calls raise IndexUnavailable."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """Lend a connection to the calling thread for one operation."""
        with self._lock:
            if self._closed:
                raise IndexUnavailable(f"index {self.path} is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._lock:
                keep = not self._closed and len(self._idle) < IDLE_CONNECTIONS
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    def _connect(self) -> sqlite3.Connection:
        with _unavailable_on_error(self.path):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # SQLite gives the WAL and shared-memory files the database file's mode.
                if not self.path.exists():
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
            except OSError as exc:
                raise IndexUnavailable(f"index folder {self.path.parent}: {exc}") from exc
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
            )
            try:
                prepare(conn)
            except BaseException:
                conn.close()
                raise
            return conn


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

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for one write transaction."""
        with self._threads:
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

    def _open(self) -> int | None:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:
                return None
        return self._fd


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
