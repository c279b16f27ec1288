"""The SQLite backend of :class:`MetadataIndex`: one file, shared by threads and processes.

Three tables hold the records (``studies``, ``series``, ``instances``; columns named as the record
fields), ``instance_headers`` holds each instance's DICOM JSON header apart so that scans of
``instances`` stay dense, and the FTS5 table ``series_text`` holds one document per series
(StudyDescription, SeriesDescription, PatientName) for ``Query.text``.

Counts, sizes and received-at bounds of series and studies are kept incrementally by the upsert
(the receiver's hot path: a few primary-key statements per instance in one short transaction,
no recount over large tables); only removing an instance, or re-receiving one with a different
time, re-reads the bounds of that one series and study.

Concurrency: WAL journal, every write in ``BEGIN IMMEDIATE`` (takes the write lock up front, so
the busy timeout applies instead of a read-to-write upgrade failing at once), writers of all
threads and processes taking turns on a lock file first (:class:`_WriterLock`), a busy timeout
for writers that do not, group commit of upserts that threads of one process make at the same
time, and a small pool of connections so that each thread uses its own while it runs and
short-lived threads (one per DICOM association) do not pile up connections.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from openjip.index.base import (
    IndexUnavailable,
    InstanceRecord,
    InvalidQuery,
    InvalidRecord,
    MetadataIndex,
    Query,
    RunOutput,
    SeriesRecord,
    StudyRecord,
    require_uids,
)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 30.0
"""How long a writer waits for the write lock held by other threads or processes."""
MAX_UIDS = 10_000
"""Longest list of UIDs one query attribute may hold."""
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
IDLE_CONNECTIONS = 8
"""Connections kept open for reuse; more may be open while more threads work at once."""

# Durability: synchronous=NORMAL under WAL. A commit is in the WAL file (in the OS page cache)
# before it returns, so a crash or kill -9 of any process loses no committed transaction; only an
# OS crash or power loss can roll back the last transactions (never corrupt the file). That keeps
# acknowledged data safe because the receiver acknowledges an instance only after its object was
# made durable in the object store and then indexed, and the index is derived data that
# `openjip index rebuild` recreates from the object store alone. FULL would add an fsync of the
# WAL to every upsert (the receiver's hot path) to protect only what a rebuild restores anyway.
SYNCHRONOUS = "NORMAL"

STUDY_FIELDS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)
"""Study-level fields of an instance record that the study row keeps."""
SERIES_FIELDS = (
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "BodyPartExamined",
    "Manufacturer",
    "source_ae",
    "derived_from",
)
"""Series-level fields of an instance record that the series row keeps."""
INSTANCE_COLUMNS = tuple(f.name for f in fields(InstanceRecord) if f.name != "header")

_TEXT = "TEXT NOT NULL DEFAULT ''"
_NUMERIC_COLUMNS = {
    "SeriesNumber": "INTEGER",
    "InstanceNumber": "INTEGER",
    "size": "INTEGER NOT NULL",
    "received_at": "REAL NOT NULL",
}


def _columns(names: Sequence[str]) -> str:
    return ", ".join(f"{name} {_NUMERIC_COLUMNS.get(name, _TEXT)}" for name in names)


_SCHEMA = (
    f"""CREATE TABLE studies (
        id INTEGER PRIMARY KEY,
        StudyInstanceUID TEXT NOT NULL UNIQUE,
        {_columns(STUDY_FIELDS)},
        NumberOfStudyRelatedSeries INTEGER NOT NULL,
        NumberOfStudyRelatedInstances INTEGER NOT NULL,
        last_received_at REAL NOT NULL)""",
    "CREATE INDEX studies_patient_id ON studies(PatientID)",
    "CREATE INDEX studies_patient_name ON studies(PatientName COLLATE NOCASE)",
    "CREATE INDEX studies_date ON studies(StudyDate, StudyInstanceUID)",
    "CREATE INDEX studies_accession ON studies(AccessionNumber)",
    f"""CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        SeriesInstanceUID TEXT NOT NULL UNIQUE,
        StudyInstanceUID TEXT NOT NULL,
        {_columns(SERIES_FIELDS)},
        NumberOfSeriesRelatedInstances INTEGER NOT NULL,
        size INTEGER NOT NULL,
        first_received_at REAL NOT NULL,
        last_received_at REAL NOT NULL,
        complete INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX series_study ON series(StudyInstanceUID, SeriesNumber, SeriesInstanceUID)",
    "CREATE INDEX series_modality ON series(Modality)",
    "CREATE INDEX series_body_part ON series(BodyPartExamined)",
    "CREATE INDEX series_idle ON series(complete, last_received_at)",
    f"""CREATE TABLE instances (
        id INTEGER PRIMARY KEY,
        SOPInstanceUID TEXT NOT NULL UNIQUE,
        SeriesInstanceUID TEXT NOT NULL,
        StudyInstanceUID TEXT NOT NULL,
        {_columns(INSTANCE_COLUMNS[3:])})""",
    "CREATE INDEX instances_series ON instances(SeriesInstanceUID, InstanceNumber, SOPInstanceUID)",
    "CREATE TABLE instance_headers (instance_id INTEGER PRIMARY KEY, header TEXT NOT NULL)",
    """CREATE VIRTUAL TABLE series_text USING fts5(
        StudyDescription, SeriesDescription, PatientName,
        tokenize = 'unicode61 remove_diacritics 2')""",
)

_RUN_OUTPUT_COLUMNS = (
    "object_key",
    "workflow",
    "run_id",
    "step",
    "SeriesInstanceUID",
    "size",
    "created_at",
)
_CREATE_RUN_OUTPUTS = """CREATE TABLE IF NOT EXISTS run_outputs (
    object_key TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    SeriesInstanceUID TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL)"""

_SELECT_OLD_INSTANCE = (
    "SELECT id, SeriesInstanceUID, StudyInstanceUID, size, received_at"
    " FROM instances WHERE SOPInstanceUID = ?"
)
_SELECT_STUDY = (
    f"SELECT id, {', '.join(STUDY_FIELDS)}, NumberOfStudyRelatedSeries,"
    " NumberOfStudyRelatedInstances, last_received_at FROM studies WHERE StudyInstanceUID = ?"
)
_SELECT_SERIES = (
    f"SELECT id, StudyInstanceUID, {', '.join(SERIES_FIELDS)}, NumberOfSeriesRelatedInstances,"
    " size, first_received_at, last_received_at, complete"
    " FROM series WHERE SeriesInstanceUID = ?"
)
_INSERT_INSTANCE = (
    f"INSERT INTO instances ({', '.join(INSTANCE_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in INSTANCE_COLUMNS)})"
)
_UPDATE_INSTANCE = (
    f"UPDATE instances SET {', '.join(f'{name} = ?' for name in INSTANCE_COLUMNS)} WHERE id = ?"
)
_UPSERT_HEADER = "INSERT OR REPLACE INTO instance_headers (instance_id, header) VALUES (?, ?)"
_INSERT_SERIES = (
    f"INSERT INTO series (SeriesInstanceUID, StudyInstanceUID, {', '.join(SERIES_FIELDS)},"
    " NumberOfSeriesRelatedInstances, size, first_received_at, last_received_at)"
    f" VALUES (?, ?, {', '.join('?' for _ in SERIES_FIELDS)}, 1, ?, ?, ?)"
)
# The descriptive fields are set only when they changed (see _changed): SQLite rewrites the
# entries of every index on a column that an UPDATE sets, even to the same value, which made
# each upsert write seven index pages of studies and series for nothing.
_UPDATE_SERIES = (
    "UPDATE series SET {}NumberOfSeriesRelatedInstances = ?, size = ?, first_received_at = ?,"
    " last_received_at = ?, complete = ? WHERE id = ?"
)
_INSERT_STUDY = (
    f"INSERT INTO studies (StudyInstanceUID, {', '.join(STUDY_FIELDS)},"
    " NumberOfStudyRelatedSeries, NumberOfStudyRelatedInstances, last_received_at)"
    f" VALUES (?, {', '.join('?' for _ in STUDY_FIELDS)}, 1, 1, ?)"
)
_UPDATE_STUDY = (
    "UPDATE studies SET {}NumberOfStudyRelatedSeries = ?, NumberOfStudyRelatedInstances = ?,"
    " last_received_at = ? WHERE id = ?"
)
_SERIES_BOUNDS = (
    "SELECT min(received_at), max(received_at) FROM instances WHERE SeriesInstanceUID = ?"
)
_STUDY_LAST = "SELECT max(last_received_at) FROM series WHERE StudyInstanceUID = ?"
_SERIES_DESCRIPTION = SERIES_FIELDS.index("SeriesDescription")
_STUDY_TEXT_FIELDS = (STUDY_FIELDS.index("StudyDescription"), STUDY_FIELDS.index("PatientName"))
_DELETE_TEXT = "DELETE FROM series_text WHERE rowid IN (SELECT id FROM series WHERE {} = ?)"
_INSERT_TEXT = (
    "INSERT INTO series_text (rowid, StudyDescription, SeriesDescription, PatientName)"
    " SELECT se.id, st.StudyDescription, se.SeriesDescription, st.PatientName"
    " FROM series se JOIN studies st ON st.StudyInstanceUID = se.StudyInstanceUID"
    " WHERE se.{} = ?"
)

_STUDY_SELECT = ", ".join(
    [f"st.{f.name}" for f in fields(StudyRecord) if f.name != "ModalitiesInStudy"]
    + [
        "(SELECT group_concat(DISTINCT m.Modality) FROM series m"
        " WHERE m.StudyInstanceUID = st.StudyInstanceUID AND m.Modality != '')"
    ]
)
_SERIES_SELECT = ", ".join(
    f"st.{f.name}" if f.name in STUDY_FIELDS else f"se.{f.name}" for f in fields(SeriesRecord)
)
_INSTANCE_SELECT = ", ".join(f"i.{name}" for name in INSTANCE_COLUMNS)
_FROM_SERIES = "series se JOIN studies st ON st.StudyInstanceUID = se.StudyInstanceUID"
# Instances joined to their series and study, starting from the level a query constrains:
# left alone, SQLite walks all instances in index order to save sorting, even when a PatientID
# or date range would find a handful. CROSS JOIN fixes the order of the tables.
_FROM_INSTANCES_BY_INSTANCE = (
    "instances i CROSS JOIN series se ON se.SeriesInstanceUID = i.SeriesInstanceUID"
    " CROSS JOIN studies st ON st.StudyInstanceUID = se.StudyInstanceUID"
)
_FROM_INSTANCES_BY_STUDY = (
    "studies st CROSS JOIN series se ON se.StudyInstanceUID = st.StudyInstanceUID"
    " CROSS JOIN instances i ON i.SeriesInstanceUID = se.SeriesInstanceUID"
)
_FROM_INSTANCES_BY_SERIES = (
    "series se CROSS JOIN studies st ON st.StudyInstanceUID = se.StudyInstanceUID"
    " CROSS JOIN instances i ON i.SeriesInstanceUID = se.SeriesInstanceUID"
)

_T = TypeVar("_T")


class SQLiteIndex(MetadataIndex):
    """The metadata index in one SQLite file; safe to share between threads and processes.

    The file (and its folder) is created on first use, so a missing or broken file shows up as
    :class:`IndexUnavailable` from the call that needs it (``check()`` for health probes).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._closed = False
        self._left_in_parent: list[sqlite3.Connection] = []
        self._start_afresh()
        _LIVE_INDEXES.add(self)

    def _start_afresh(self) -> None:
        """New locks, no connections: at creation, and in the child after a fork()."""
        self._lock = threading.Lock()
        self._writer = _WriterLock(self.path.with_name(self.path.name + "-writer.lock"))
        self._idle: list[sqlite3.Connection] = []
        self._group = threading.Condition()
        self._queued: list[_Upsert] = []
        self._leading = False

    def __repr__(self) -> str:
        return f"SQLiteIndex({str(self.path)!r})"

    # -- writing -----------------------------------------------------------------------------

    def upsert_instances(self, records: list[InstanceRecord]) -> int:
        """Add or replace instances atomically; return how many were new.

        Group commit: calls of threads that arrive while a transaction is being written are
        queued, and the next thread to write takes the whole queue into one transaction (one
        savepoint per call, so a refused record fails only its own call). Every caller returns
        once its records are committed, never earlier.
        """
        for record in records:
            require_uids(record)
        if not records:
            return 0
        # Encoded before queueing, so that no thread holds the write lock while encoding.
        mine = _Upsert(records, [_header_json(record.header) for record in records])
        with self._group:
            self._queued.append(mine)
            while self._leading and not mine.done:
                self._group.wait()
            if not mine.done:
                self._leading = True
                batch, self._queued = self._queued, []
        if not mine.done:
            try:
                self._commit_upserts(batch)
            finally:
                with self._group:
                    self._leading = False
                    self._group.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.new

    def _commit_upserts(self, batch: list[_Upsert]) -> None:
        def upsert(cur: sqlite3.Cursor) -> None:
            for call in batch:
                cur.execute("SAVEPOINT upsert")
                try:
                    call.new = sum(map(partial(_upsert, cur), call.records, call.headers))
                except InvalidRecord as exc:
                    cur.execute("ROLLBACK TO upsert")
                    call.error = exc
                cur.execute("RELEASE upsert")

        try:
            self._write(upsert)
        except BaseException as exc:
            for call in batch:
                call.new = 0
                call.error = (
                    IndexUnavailable(str(exc)) if isinstance(exc, IndexUnavailable) else exc
                )
            raise
        finally:
            for call in batch:
                call.done = True

    def delete_instance(self, sop_instance_uid: str) -> bool:
        """Forget one instance; series and study counts and bounds follow."""

        def delete(cur: sqlite3.Cursor) -> bool:
            old = cur.execute(_SELECT_OLD_INSTANCE, (sop_instance_uid,)).fetchone()
            if old is None:
                return False
            _remove(cur, _OldInstance(*old))
            return True

        return self._write(delete)

    def mark_series_complete(
        self, series_instance_uid: str, last_received_at: float
    ) -> SeriesRecord | None:
        """Compare-and-set in one UPDATE: only the caller whose UPDATE changed the row wins."""

        def mark(cur: sqlite3.Cursor) -> SeriesRecord | None:
            cur.execute(
                "UPDATE series SET complete = 1, version = version + 1"
                " WHERE SeriesInstanceUID = ? AND complete = 0 AND last_received_at = ?",
                (series_instance_uid, last_received_at),
            )
            if cur.rowcount != 1:
                return None
            row = cur.execute(
                f"SELECT {_SERIES_SELECT} FROM {_FROM_SERIES} WHERE se.SeriesInstanceUID = ?",
                (series_instance_uid,),
            ).fetchone()
            return _series_record(row)

        return self._write(mark)

    def clear(self) -> None:
        """Remove every record, run outputs included."""

        def clear(cur: sqlite3.Cursor) -> None:
            cur.execute(_CREATE_RUN_OUTPUTS)
            for table in (
                "instance_headers",
                "instances",
                "series",
                "studies",
                "series_text",
                "run_outputs",
            ):
                cur.execute(f"DELETE FROM {table}")

        self._write(clear)

    # -- reading -----------------------------------------------------------------------------

    def get_instance(self, sop_instance_uid: str) -> InstanceRecord | None:
        """The instance with its header, or ``None``."""
        rows = self._read(
            f"SELECT {_INSTANCE_SELECT}, h.header FROM instances i"
            " LEFT JOIN instance_headers h ON h.instance_id = i.id WHERE i.SOPInstanceUID = ?",
            [sop_instance_uid],
        )
        return _instance_record(rows[0], with_header=True) if rows else None

    def find_studies(self, query: Query) -> list[StudyRecord]:
        """Matching studies ordered by StudyDate, then StudyInstanceUID."""
        where = _Where.of(query)
        conditions = list(where.study)
        if where.series or where.instance:
            conditions.append(
                "st.StudyInstanceUID IN (SELECT se.StudyInstanceUID FROM series se"
                f"{_where_sql(where.series + where.instance_in())})"
            )
        params = where.study_params + where.series_params + where.instance_params
        sql = (
            f"SELECT {_STUDY_SELECT} FROM studies st{_where_sql(conditions)}"
            f" ORDER BY st.StudyDate, st.StudyInstanceUID{_page_sql(query, params)}"
        )
        return [_study_record(row) for row in self._read(sql, params)]

    def find_series(self, query: Query) -> list[SeriesRecord]:
        """Matching series ordered by StudyInstanceUID, SeriesNumber (none first), UID."""
        where = _Where.of(query)
        conditions = where.study + where.series + where.instance_in()
        params = where.study_params + where.series_params + where.instance_params
        sql = (
            f"SELECT {_SERIES_SELECT} FROM {_FROM_SERIES}{_where_sql(conditions)}"
            " ORDER BY se.StudyInstanceUID, se.SeriesNumber, se.SeriesInstanceUID"
            f"{_page_sql(query, params)}"
        )
        return [_series_record(row) for row in self._read(sql, params)]

    def find_instances(self, query: Query, *, with_header: bool = False) -> list[InstanceRecord]:
        """Matching instances ordered by SeriesInstanceUID, InstanceNumber (none first), UID."""
        where = _Where.of(query)
        conditions = where.study + where.series + where.instance
        params = where.study_params + where.series_params + where.instance_params
        header_sql = ", h.header" if with_header else ""
        header_join = " LEFT JOIN instance_headers h ON h.instance_id = i.id" if with_header else ""
        if where.instance or not (where.study or where.series):
            tables = _FROM_INSTANCES_BY_INSTANCE
        else:
            tables = _FROM_INSTANCES_BY_STUDY if where.study else _FROM_INSTANCES_BY_SERIES
        sql = (
            f"SELECT {_INSTANCE_SELECT}{header_sql} FROM {tables}{header_join}"
            f"{_where_sql(conditions)}"
            " ORDER BY i.SeriesInstanceUID, i.InstanceNumber, i.SOPInstanceUID"
            f"{_page_sql(query, params)}"
        )
        return [_instance_record(row, with_header=with_header) for row in self._read(sql, params)]

    def idle_series(self, received_before: float) -> list[SeriesRecord]:
        """Incomplete series whose last instance arrived before ``received_before``."""
        rows = self._read(
            f"SELECT {_SERIES_SELECT} FROM {_FROM_SERIES}"
            " WHERE se.complete = 0 AND se.last_received_at < ?"
            " ORDER BY se.last_received_at, se.SeriesInstanceUID",
            [received_before],
        )
        return [_series_record(row) for row in rows]

    # -- health and lifetime -----------------------------------------------------------------

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

    # -- run outputs (non-DICOM results of analysis steps) ----------------------------------

    def add_run_outputs(self, outputs: list[RunOutput]) -> None:
        """Record non-DICOM step outputs; the same object key again replaces its row."""

        def add(cur: sqlite3.Cursor) -> None:
            cur.execute(_CREATE_RUN_OUTPUTS)
            cur.executemany(
                f"INSERT OR REPLACE INTO run_outputs ({', '.join(_RUN_OUTPUT_COLUMNS)})"
                f" VALUES ({', '.join('?' for _ in _RUN_OUTPUT_COLUMNS)})",
                [tuple(getattr(o, c) for c in _RUN_OUTPUT_COLUMNS) for o in outputs],
            )

        self._write(add)

    def find_run_outputs(
        self, *, workflow: str = "", run_id: str = "", series_instance_uid: str = ""
    ) -> list[RunOutput]:
        """Run outputs matching every given field, by object key."""
        given = {"workflow": workflow, "run_id": run_id, "SeriesInstanceUID": series_instance_uid}
        conditions = [f"{column} = ?" for column, value in given.items() if value]
        params = [value for value in given.values() if value]

        def find(cur: sqlite3.Cursor) -> list[RunOutput]:
            # The table is created on first use: index files of older openjip versions lack it.
            cur.execute(_CREATE_RUN_OUTPUTS)
            rows = cur.execute(
                f"SELECT {', '.join(_RUN_OUTPUT_COLUMNS)} FROM run_outputs"
                f"{_where_sql(conditions)} ORDER BY object_key",
                params,
            ).fetchall()
            return [RunOutput(*row) for row in rows]

        return self._write(find)

    # -- connections -------------------------------------------------------------------------

    def _write(self, work: Callable[[sqlite3.Cursor], _T]) -> _T:
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

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._connection() as conn, _unavailable_on_error(self.path):
            return conn.execute(sql, params).fetchall()

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
                _prepare(conn)
            except BaseException:
                conn.close()
                raise
            return conn


class _WriterLock:
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


_LIVE_INDEXES: weakref.WeakSet[SQLiteIndex] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """SQLite connections must not cross fork(), and locks held by other threads of the parent
    would never be released: every index of the child starts afresh. The parent's connections
    stay referenced (closing them here could disturb the parent's locks on the file)."""
    for index in list(_LIVE_INDEXES):
        index._left_in_parent += index._idle
        index._writer.close()
        index._start_afresh()


os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclass
class _Upsert:
    """One queued ``upsert_instances`` call and, once committed, its outcome."""

    records: list[InstanceRecord]
    headers: list[str]
    new: int = 0
    error: BaseException | None = None
    done: bool = False


def _prepare(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL and create the schema if this is the first connection ever."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise IndexUnavailable(f"cannot switch the index to WAL (journal mode {mode})")
    conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
    # A WAL that grew while readers held back checkpoints is cut back to this size afterwards.
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise IndexUnavailable(
                f"index schema version {version}, this openjip uses {SCHEMA_VERSION};"
                " move the file away and run `openjip index rebuild`"
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


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


# -- the upsert (hot path) and removal ----------------------------------------------------------


@dataclass
class _OldInstance:
    id: int
    SeriesInstanceUID: str
    StudyInstanceUID: str
    size: int
    received_at: float


def _merge(old: Sequence[Any], new: Sequence[Any]) -> list[Any]:
    """The latest non-empty value of each field wins, so a result series without a
    StudyDescription does not blank the one its study was received with."""
    return [n if n not in ("", None) else o for o, n in zip(old, new, strict=True)]


def _changed(names: Sequence[str], old: Sequence[Any], new: Sequence[Any]) -> tuple[str, list[Any]]:
    """SET assignments (each followed by ", ") and values of the fields whose value changed."""
    changed = [
        (name, value) for name, was, value in zip(names, old, new, strict=True) if value != was
    ]
    return "".join(f"{name} = ?, " for name, _ in changed), [value for _, value in changed]


def _header_json(header: dict[str, Any]) -> str:
    return json.dumps(header, separators=(",", ":"), ensure_ascii=False, check_circular=False)


def _upsert(cur: sqlite3.Cursor, record: InstanceRecord, header: str) -> bool:
    """Add or replace one instance (with its header as JSON text) and keep its series and study
    exact; ``True`` if new."""
    row = cur.execute(_SELECT_OLD_INSTANCE, (record.SOPInstanceUID,)).fetchone()
    old = _OldInstance(*row) if row else None
    if old and (
        old.SeriesInstanceUID != record.SeriesInstanceUID
        or old.StudyInstanceUID != record.StudyInstanceUID
    ):
        _remove(cur, old)
        old = None
    series = cur.execute(_SELECT_SERIES, (record.SeriesInstanceUID,)).fetchone()
    if series is not None and series[1] != record.StudyInstanceUID:
        raise InvalidRecord(
            f"series {record.SeriesInstanceUID} belongs to study {series[1]},"
            f" not {record.StudyInstanceUID}"
        )
    study = cur.execute(_SELECT_STUDY, (record.StudyInstanceUID,)).fetchone()

    values = [getattr(record, name) for name in INSTANCE_COLUMNS]
    if old is None:
        instance_id = cur.execute(_INSERT_INSTANCE, values).lastrowid
    else:
        instance_id = old.id
        cur.execute(_UPDATE_INSTANCE, [*values, instance_id])
    cur.execute(_UPSERT_HEADER, (instance_id, header))

    received = record.received_at
    series_values = [getattr(record, name) for name in SERIES_FIELDS]
    text_changed = series is None
    if series is None:
        cur.execute(
            _INSERT_SERIES,
            [
                record.SeriesInstanceUID,
                record.StudyInstanceUID,
                *series_values,
                record.size,
                received,
                received,
            ],
        )
    else:
        n = len(SERIES_FIELDS)
        old_fields = series[2 : 2 + n]
        count, size, first, last, complete = series[2 + n :]
        merged = _merge(old_fields, series_values)
        text_changed = merged[_SERIES_DESCRIPTION] != old_fields[_SERIES_DESCRIPTION]
        if old is None:
            count, size = count + 1, size + record.size
            first, last = min(first, received), max(last, received)
            complete = 0  # a new instance makes a new version of a complete series
        else:
            size += record.size - old.size
            if received != old.received_at and old.received_at in (first, last):
                first, last = cur.execute(_SERIES_BOUNDS, (record.SeriesInstanceUID,)).fetchone()
            else:
                first, last = min(first, received), max(last, received)
        assignments, changed = _changed(SERIES_FIELDS, old_fields, merged)
        cur.execute(
            _UPDATE_SERIES.format(assignments),
            [*changed, count, size, first, last, complete, series[0]],
        )

    study_values = [getattr(record, name) for name in STUDY_FIELDS]
    study_text_changed = False
    if study is None:
        cur.execute(_INSERT_STUDY, [record.StudyInstanceUID, *study_values, received])
    else:
        n = len(STUDY_FIELDS)
        old_fields = study[1 : 1 + n]
        series_count, instance_count, study_last = study[1 + n :]
        merged = _merge(old_fields, study_values)
        study_text_changed = any(merged[i] != old_fields[i] for i in _STUDY_TEXT_FIELDS)
        series_count += series is None
        instance_count += old is None
        if old is not None and received < old.received_at and old.received_at == study_last:
            study_last = cur.execute(_STUDY_LAST, (record.StudyInstanceUID,)).fetchone()[0]
        else:
            study_last = max(study_last, received)
        assignments, changed = _changed(STUDY_FIELDS, old_fields, merged)
        cur.execute(
            _UPDATE_STUDY.format(assignments),
            [*changed, series_count, instance_count, study_last, study[0]],
        )

    # The text of a series is refreshed only when it changed: for a new series, and rarely else.
    if study_text_changed:
        for sql in (_DELETE_TEXT, _INSERT_TEXT):
            cur.execute(sql.format("StudyInstanceUID"), (record.StudyInstanceUID,))
    elif text_changed:
        for sql in (_DELETE_TEXT, _INSERT_TEXT):
            cur.execute(sql.format("SeriesInstanceUID"), (record.SeriesInstanceUID,))
    return old is None


def _remove(cur: sqlite3.Cursor, old: _OldInstance) -> None:
    """Delete one instance and take it out of its series and study (dropping them when empty)."""
    cur.execute("DELETE FROM instances WHERE id = ?", (old.id,))
    cur.execute("DELETE FROM instance_headers WHERE instance_id = ?", (old.id,))
    series_id, count, size = cur.execute(
        "SELECT id, NumberOfSeriesRelatedInstances, size FROM series WHERE SeriesInstanceUID = ?",
        (old.SeriesInstanceUID,),
    ).fetchone()
    series_gone = count == 1
    if series_gone:
        cur.execute("DELETE FROM series WHERE id = ?", (series_id,))
        cur.execute("DELETE FROM series_text WHERE rowid = ?", (series_id,))
    else:
        first, last = cur.execute(_SERIES_BOUNDS, (old.SeriesInstanceUID,)).fetchone()
        cur.execute(
            "UPDATE series SET NumberOfSeriesRelatedInstances = ?, size = ?,"
            " first_received_at = ?, last_received_at = ? WHERE id = ?",
            (count - 1, size - old.size, first, last, series_id),
        )
    study_id, series_count, instance_count = cur.execute(
        "SELECT id, NumberOfStudyRelatedSeries, NumberOfStudyRelatedInstances"
        " FROM studies WHERE StudyInstanceUID = ?",
        (old.StudyInstanceUID,),
    ).fetchone()
    if series_gone and series_count == 1:
        cur.execute("DELETE FROM studies WHERE id = ?", (study_id,))
        return
    study_last = cur.execute(_STUDY_LAST, (old.StudyInstanceUID,)).fetchone()[0]
    cur.execute(
        "UPDATE studies SET NumberOfStudyRelatedSeries = ?, NumberOfStudyRelatedInstances = ?,"
        " last_received_at = ? WHERE id = ?",
        (series_count - series_gone, instance_count - 1, study_last, study_id),
    )


# -- queries ------------------------------------------------------------------------------------


@dataclass
class _Where:
    """SQL conditions of a query, split by the level (table alias) they constrain."""

    study: list[str] = field(default_factory=list)
    study_params: list[Any] = field(default_factory=list)
    series: list[str] = field(default_factory=list)
    series_params: list[Any] = field(default_factory=list)
    instance: list[str] = field(default_factory=list)
    instance_params: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, query: Query) -> _Where:
        where = cls()
        if (query.limit is not None and query.limit < 0) or query.offset < 0:
            raise InvalidQuery("limit and offset must not be negative")
        where._match_study("PatientID", query.PatientID)
        where._match_study("AccessionNumber", query.AccessionNumber)
        name = query.PatientName.strip()
        if name and name != "*":
            if _has_wildcard(name):
                where.study.append("st.PatientName LIKE ? ESCAPE '\\'")
                where.study_params.append(_like_pattern(name))
            else:
                where.study.append("st.PatientName = ? COLLATE NOCASE")
                where.study_params.append(name)
        first, last = query.study_date_range()
        if first is not None:
            where.study.append("st.StudyDate >= ?")
            where.study_params.append(first)
        if last is not None:
            where.study.append("st.StudyDate <= ? AND st.StudyDate != ''")
            where.study_params.append(last)
        _match_uids(where.study, where.study_params, "st.StudyInstanceUID", query.StudyInstanceUID)
        _match_value(where.series, where.series_params, "se.Modality", query.Modality)
        _match_value(
            where.series, where.series_params, "se.BodyPartExamined", query.BodyPartExamined
        )
        _match_uids(
            where.series, where.series_params, "se.SeriesInstanceUID", query.SeriesInstanceUID
        )
        match = _fts_match(query.text)
        if match:
            where.series.append(
                "se.id IN (SELECT rowid FROM series_text WHERE series_text MATCH ?)"
            )
            where.series_params.append(match)
        _match_uids(where.instance, where.instance_params, "i.SOPInstanceUID", query.SOPInstanceUID)
        return where

    def _match_study(self, name: str, value: str) -> None:
        _match_value(self.study, self.study_params, f"st.{name}", value)

    def instance_in(self) -> list[str]:
        """The instance conditions as a condition on series ``se`` (none if there are none).

        Uncorrelated IN-subqueries, unlike EXISTS, let SQLite start from whichever side is
        selective: a list of SOP Instance UIDs, or a PatientID on the outer query.
        """
        if not self.instance:
            return []
        return [
            "se.SeriesInstanceUID IN (SELECT i.SeriesInstanceUID FROM instances i"
            f"{_where_sql(self.instance)})"
        ]


_GLOB_SPECIAL = re.compile(r"[\[\]]")
_LIKE_SPECIAL = re.compile(r"[\\%_]")
_WORD = re.compile(r"\w+")


def _match_uids(conditions: list[str], params: list[Any], column: str, uids: list[str]) -> None:
    """Any of a list of UIDs; one placeholder each, so that SQLite knows the list is short and
    looks each one up in the column's unique index."""
    if not uids:
        return
    if len(uids) > MAX_UIDS:
        raise InvalidQuery(f"at most {MAX_UIDS} UIDs per attribute, not {len(uids)}")
    conditions.append(f"{column} IN ({', '.join('?' for _ in uids)})")
    params += uids


def _has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _match_value(conditions: list[str], params: list[Any], column: str, value: str) -> None:
    """Case-sensitive DICOM matching: single value, or ``*``/``?`` wildcards via GLOB."""
    value = value.strip()
    if not value or value == "*":
        return
    if _has_wildcard(value):
        conditions.append(f"{column} GLOB ?")
        # In GLOB only '[' opens a class; ']' is literal outside one but is bracketed too.
        params.append(_GLOB_SPECIAL.sub(lambda m: f"[{m.group()}]", value))
    else:
        conditions.append(f"{column} = ?")
        params.append(value)


def _like_pattern(value: str) -> str:
    """A DICOM wildcard pattern as a LIKE pattern with ``\\`` escaping literal % _ and \\."""
    escaped = _LIKE_SPECIAL.sub(lambda m: "\\" + m.group(), value)
    return escaped.replace("*", "%").replace("?", "_")


def _fts_match(text: str) -> str:
    """Free text as an FTS5 query: every word must start a word of the series document."""
    words = _WORD.findall(text)
    return " ".join('"{}"*'.format(word.replace('"', '""')) for word in words)


def _where_sql(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _page_sql(query: Query, params: list[Any]) -> str:
    """LIMIT/OFFSET for the query (appending their parameters); every order ends in a UID, so
    pages are stable."""
    if query.limit is None and not query.offset:
        return ""
    params += [-1 if query.limit is None else query.limit, query.offset]
    return " LIMIT ? OFFSET ?"


# -- rows to records ----------------------------------------------------------------------------


def _study_record(row: tuple[Any, ...]) -> StudyRecord:
    *values, modalities = row
    names = [f.name for f in fields(StudyRecord) if f.name != "ModalitiesInStudy"]
    record = StudyRecord(**dict(zip(names, values, strict=True)))
    record.ModalitiesInStudy = sorted(modalities.split(",")) if modalities else []
    return record


def _series_record(row: tuple[Any, ...]) -> SeriesRecord:
    record = SeriesRecord(*row)
    record.complete = bool(record.complete)
    return record


def _instance_record(row: tuple[Any, ...], *, with_header: bool) -> InstanceRecord:
    if with_header:
        *values, header = row
        record = InstanceRecord(*values)
        record.header = json.loads(header) if header else {}
        return record
    return InstanceRecord(*row)
