"""Writing one instance into the SQLite index (the receiver's hot path), and removing one.

Counts, sizes and received-at bounds of series and studies are kept incrementally: a few
primary-key statements per instance in one short transaction, no recount over large tables;
only removing an instance, or re-receiving one with a different time, re-reads the bounds of
that one series and study.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openjip.index.base import InstanceRecord, InvalidRecord
from openjip.index.sqlite.schema import INSTANCE_COLUMNS, SERIES_FIELDS, STUDY_FIELDS

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


_ADD_PROJECT = "INSERT OR IGNORE INTO study_projects (StudyInstanceUID, project) VALUES (?, ?)"


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


def upsert(cur: sqlite3.Cursor, record: InstanceRecord, header: str) -> bool:
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

    cur.executemany(
        _ADD_PROJECT, [(record.StudyInstanceUID, project) for project in record.projects]
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
        cur.execute(
            "DELETE FROM study_projects WHERE StudyInstanceUID = ?", (old.StudyInstanceUID,)
        )
        return
    study_last = cur.execute(_STUDY_LAST, (old.StudyInstanceUID,)).fetchone()[0]
    cur.execute(
        "UPDATE studies SET NumberOfStudyRelatedSeries = ?, NumberOfStudyRelatedInstances = ?,"
        " last_received_at = ? WHERE id = ?",
        (series_count - series_gone, instance_count - 1, study_last, study_id),
    )


def delete(cur: sqlite3.Cursor, *, sop_instance_uid: str) -> bool:
    """Delete one instance by UID (see :func:`_remove`); ``True`` if it was there."""
    old = cur.execute(_SELECT_OLD_INSTANCE, (sop_instance_uid,)).fetchone()
    if old is None:
        return False
    _remove(cur, _OldInstance(*old))
    return True


def set_study_projects(
    cur: sqlite3.Cursor, study_instance_uid: str, projects: Sequence[str], *, replace: bool
) -> bool:
    """Add the study to ``projects`` (or make them its only ones); ``False`` if it is unknown."""
    if (
        cur.execute(
            "SELECT 1 FROM studies WHERE StudyInstanceUID = ?", (study_instance_uid,)
        ).fetchone()
        is None
    ):
        return False
    if replace:
        cur.execute("DELETE FROM study_projects WHERE StudyInstanceUID = ?", (study_instance_uid,))
    cur.executemany(_ADD_PROJECT, [(study_instance_uid, project) for project in projects])
    return True
