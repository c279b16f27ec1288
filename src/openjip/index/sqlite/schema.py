"""The SQLite index's file layout: tables and columns (named as the record fields), the FTS5
table of series text, the schema version, and the pragmas every connection sets.

Durability: ``synchronous=NORMAL`` under WAL. A commit is in the WAL file (in the OS page cache)
before it returns, so a crash or kill -9 of any process loses no committed transaction; only an
OS crash or power loss can roll back the last transactions (never corrupt the file). That keeps
acknowledged data safe because the receiver acknowledges an instance only after its object was
made durable in the object store and then indexed, and the index is derived data that
`openjip index rebuild` recreates from the object store alone. FULL would add an fsync of the
WAL to every upsert (the receiver's hot path) to protect only what a rebuild restores anyway.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import fields

from openjip.index.base import IndexUnavailable
from openjip.records.model import SERIES_FIELDS, STUDY_FIELDS, InstanceRecord

SCHEMA_VERSION = 2
"""1: without projects; a version-1 file gets ``study_projects`` (every study in ``default``)."""
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
SYNCHRONOUS = "NORMAL"

_UIDS = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
INSTANCE_COLUMNS = _UIDS + tuple(
    f.name for f in fields(InstanceRecord) if f.name not in {*_UIDS, "header", "projects"}
)
"""Columns of the instances table, the three UIDs first: the record's fields but its header (a
table of its own) and its projects (those of its study, in ``study_projects``)."""

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
        {_columns(INSTANCE_COLUMNS[len(_UIDS) :])})""",
    "CREATE INDEX instances_series ON instances(SeriesInstanceUID, InstanceNumber, SOPInstanceUID)",
    "CREATE TABLE instance_headers (instance_id INTEGER PRIMARY KEY, header TEXT NOT NULL)",
    """CREATE VIRTUAL TABLE series_text USING fts5(
        StudyDescription, SeriesDescription, PatientName,
        tokenize = 'unicode61 remove_diacritics 2')""",
)
_PROJECTS_SCHEMA = (
    """CREATE TABLE study_projects (
        StudyInstanceUID TEXT NOT NULL,
        project TEXT NOT NULL,
        PRIMARY KEY (StudyInstanceUID, project)) WITHOUT ROWID""",
    "CREATE INDEX study_projects_project ON study_projects(project, StudyInstanceUID)",
)
MIGRATIONS_TABLE = "schema_migrations"
"""Each migration step the file went through, written in the step's own transaction: the index
reports its migrations there, and :mod:`openjip.state` copies them into the site's migration
log (the index knows nothing of the site's state)."""
_MIGRATION_RECORD = (
    f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
        from_version INTEGER NOT NULL,
        to_version INTEGER NOT NULL,
        migrated_at REAL NOT NULL)""",
)
_MIGRATE_1_TO_2 = (
    *_PROJECTS_SCHEMA,
    "INSERT INTO study_projects SELECT StudyInstanceUID, 'default' FROM studies",
    *_MIGRATION_RECORD,
)

RUN_OUTPUT_COLUMNS = (
    "object_key",
    "workflow",
    "run_id",
    "step",
    "SeriesInstanceUID",
    "size",
    "created_at",
)
CREATE_RUN_OUTPUTS = """CREATE TABLE IF NOT EXISTS run_outputs (
    object_key TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    SeriesInstanceUID TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL)"""


def prepare(conn: sqlite3.Connection) -> None:
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
        if version in (0, 1):
            for statement in (_SCHEMA + _PROJECTS_SCHEMA) if version == 0 else _MIGRATE_1_TO_2:
                conn.execute(statement)
            if version == 1:
                conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} VALUES (?, ?, ?)",
                    (version, SCHEMA_VERSION, time.time()),
                )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version > SCHEMA_VERSION:
            raise IndexUnavailable(
                f"the index is at schema version {version}, newer than version {SCHEMA_VERSION}"
                " that this openjip knows; it was written by a newer openjip: upgrade openjip"
                " again (or restore a backup made before the upgrade). Nothing was changed."
            )
        elif version != SCHEMA_VERSION:
            raise IndexUnavailable(
                f"index schema version {version}, this openjip uses {SCHEMA_VERSION};"
                " move the file away and run `openjip index rebuild`"
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def applied_migrations(conn: sqlite3.Connection) -> list[tuple[int, int, float]]:
    """(from, to, when) of every migration step this file went through, oldest first."""
    known = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)
    ).fetchone()
    if known is None:
        return []
    rows = conn.execute(f"SELECT * FROM {MIGRATIONS_TABLE} ORDER BY migrated_at").fetchall()
    return [(int(a), int(b), float(at)) for a, b, at in rows]
