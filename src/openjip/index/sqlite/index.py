"""The SQLite backend of :class:`MetadataIndex`: one file, shared by threads and processes.

Three tables hold the records (``studies``, ``series``, ``instances``), ``instance_headers`` each
instance's DICOM JSON header apart so that scans of ``instances`` stay dense, and the FTS5 table
``series_text`` one document per series for ``Query.text`` (layout in
:mod:`~openjip.index.sqlite.schema`, the upsert in :mod:`~openjip.index.sqlite.upsert`, queries in
:mod:`~openjip.index.sqlite.queries`, connections and locking in
:mod:`~openjip.index.sqlite.connections`).

Upserts that threads of one process make at the same time are committed together (group commit).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import openjip.index.sqlite.queries as queries
from openjip.index.base import (
    HeaderText,
    IndexUnavailable,
    InstanceRecord,
    InvalidRecord,
    MetadataIndex,
    Query,
    RunOutput,
    SeriesRecord,
    StudyRecord,
    header_json,
    require_uids,
)
from openjip.index.sqlite.connections import ConnectionPool
from openjip.index.sqlite.schema import CREATE_RUN_OUTPUTS, RUN_OUTPUT_COLUMNS
from openjip.index.sqlite.upsert import delete, set_study_projects, upsert


class SQLiteIndex(MetadataIndex):
    """The metadata index in one SQLite file; safe to share between threads and processes.

    The file (and its folder) is created on first use, so a missing or broken file shows up as
    :class:`IndexUnavailable` from the call that needs it (``check()`` for health probes).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._pool = ConnectionPool(self.path)
        self._start_afresh()
        _LIVE_INDEXES.add(self)

    def _start_afresh(self) -> None:
        """No upsert queued: at creation, and in the child after a fork()."""
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
        mine = _Upsert(records, [header_json(record.header) for record in records])
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
        def upsert_batch(cur: sqlite3.Cursor) -> None:
            for call in batch:
                cur.execute("SAVEPOINT upsert")
                try:
                    call.new = sum(map(partial(upsert, cur), call.records, call.headers))
                except InvalidRecord as exc:
                    cur.execute("ROLLBACK TO upsert")
                    call.error = exc
                cur.execute("RELEASE upsert")

        try:
            self._pool.write(upsert_batch)
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
        return self._pool.write(partial(delete, sop_instance_uid=sop_instance_uid))

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
            row = cur.execute(queries.SERIES_BY_UID, (series_instance_uid,)).fetchone()
            return queries.series_record(row)

        return self._pool.write(mark)

    def clear(self) -> None:
        """Remove every record, run outputs included."""

        def clear(cur: sqlite3.Cursor) -> None:
            cur.execute(CREATE_RUN_OUTPUTS)
            for table in (
                "instance_headers",
                "instances",
                "series",
                "studies",
                "series_text",
                "study_projects",
                "run_outputs",
            ):
                cur.execute(f"DELETE FROM {table}")

        self._pool.write(clear)

    def set_study_projects(
        self, study_instance_uid: str, projects: list[str], *, replace: bool = False
    ) -> bool:
        """Add the study to ``projects`` (or make them its only ones); ``False`` if unknown."""
        return self._pool.write(
            partial(
                set_study_projects,
                study_instance_uid=study_instance_uid,
                projects=projects,
                replace=replace,
            )
        )

    # -- reading -----------------------------------------------------------------------------

    def get_instance(self, sop_instance_uid: str) -> InstanceRecord | None:
        """The instance with its header, or ``None``."""
        rows = self._read(queries.INSTANCE_BY_UID, [sop_instance_uid])
        return queries.instance_record(rows[0], with_header=True) if rows else None

    def find_studies(self, query: Query) -> list[StudyRecord]:
        """Matching studies in ``query.order`` (StudyDate by default), then StudyInstanceUID."""
        return [queries.study_record(row) for row in self._read(*queries.studies_sql(query))]

    def find_series(self, query: Query) -> list[SeriesRecord]:
        """Matching series ordered by StudyInstanceUID, SeriesNumber (none first), UID."""
        return [queries.series_record(row) for row in self._read(*queries.series_sql(query))]

    def find_instances(self, query: Query, *, with_header: bool = False) -> list[InstanceRecord]:
        """Matching instances ordered by SeriesInstanceUID, InstanceNumber (none first), UID."""
        rows = self._read(*queries.instances_sql(query, with_header=with_header))
        return [queries.instance_record(row, with_header=with_header) for row in rows]

    def find_header_texts(self, query: Query, peek: Sequence[str] = ()) -> list[HeaderText]:
        """Matching instances with their headers as stored; SQLite's JSON functions peek."""
        rows = self._read(*queries.instances_sql(query, with_header=True, peek=peek))
        return [queries.header_text(row, peek) for row in rows]

    def idle_series(self, received_before: float) -> list[SeriesRecord]:
        """Incomplete series whose last instance arrived before ``received_before``."""
        rows = self._read(queries.IDLE_SERIES, [received_before])
        return [queries.series_record(row) for row in rows]

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._pool.read(sql, params)

    # -- run outputs (non-DICOM results of analysis steps) ----------------------------------

    def add_run_outputs(self, outputs: list[RunOutput]) -> None:
        """Record non-DICOM step outputs; the same object key again replaces its row."""

        def add(cur: sqlite3.Cursor) -> None:
            cur.execute(CREATE_RUN_OUTPUTS)
            cur.executemany(
                f"INSERT OR REPLACE INTO run_outputs ({', '.join(RUN_OUTPUT_COLUMNS)})"
                f" VALUES ({', '.join('?' for _ in RUN_OUTPUT_COLUMNS)})",
                [tuple(getattr(o, c) for c in RUN_OUTPUT_COLUMNS) for o in outputs],
            )

        self._pool.write(add)

    def find_run_outputs(
        self, *, workflow: str = "", run_id: str = "", series_instance_uid: str = ""
    ) -> list[RunOutput]:
        """Run outputs matching every given field, by object key."""
        given = {"workflow": workflow, "run_id": run_id, "SeriesInstanceUID": series_instance_uid}
        conditions = [f"{column} = ?" for column, value in given.items() if value]
        params = [value for value in given.values() if value]

        def find(cur: sqlite3.Cursor) -> list[RunOutput]:
            # The table is created on first use: index files of older openjip versions lack it.
            cur.execute(CREATE_RUN_OUTPUTS)
            rows = cur.execute(
                f"SELECT {', '.join(RUN_OUTPUT_COLUMNS)} FROM run_outputs"
                f"{queries.where_sql(conditions)} ORDER BY object_key",
                params,
            ).fetchall()
            return [RunOutput(*row) for row in rows]

        return self._pool.write(find)

    # -- health and lifetime -----------------------------------------------------------------

    def check(self) -> None:
        """Open the file and take (and release) the write lock, or raise IndexUnavailable."""
        self._pool.check()

    def close(self) -> None:
        """Close every pooled connection; later calls raise IndexUnavailable."""
        self._pool.close()


_LIVE_INDEXES: weakref.WeakSet[SQLiteIndex] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """Every index of the child starts afresh: its connections and locks, and the queue of
    upserts (a thread of the parent may have held it)."""
    for index in list(_LIVE_INDEXES):
        index._pool.restart_in_child()
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
