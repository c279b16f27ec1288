"""Queries on the SQLite index: a :class:`Query` as SQL (conditions split by the level they
constrain, DICOM wildcards as GLOB/LIKE, free text as FTS5), and rows back to records."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from openjip.index.base import (
    HeaderText,
    InstanceRecord,
    InvalidQuery,
    Query,
    SeriesRecord,
    StudyRecord,
    require_tags,
)
from openjip.index.sqlite.schema import INSTANCE_COLUMNS, STUDY_FIELDS

MAX_UIDS = 10_000
"""Longest list of UIDs one query attribute may hold."""


def _projects_of(study_uid: str) -> str:
    """A column of the projects (comma-separated) of the study whose UID is ``study_uid``."""
    return (
        "(SELECT group_concat(p.project) FROM study_projects p"
        f" WHERE p.StudyInstanceUID = {study_uid})"
    )


_STUDY_NAMES = [
    f.name for f in fields(StudyRecord) if f.name not in ("ModalitiesInStudy", "projects")
]
_STUDY_SELECT = ", ".join(
    [f"st.{name}" for name in _STUDY_NAMES]
    + [
        _projects_of("st.StudyInstanceUID"),
        "(SELECT group_concat(DISTINCT m.Modality) FROM series m"
        " WHERE m.StudyInstanceUID = st.StudyInstanceUID AND m.Modality != '')",
    ]
)
_SERIES_NAMES = [f.name for f in fields(SeriesRecord)]
_SERIES_SELECT = ", ".join(
    _projects_of("se.StudyInstanceUID")
    if name == "projects"
    else f"st.{name}"
    if name in STUDY_FIELDS
    else f"se.{name}"
    for name in _SERIES_NAMES
)
_INSTANCE_SELECT = ", ".join(
    [f"i.{name}" for name in INSTANCE_COLUMNS] + [_projects_of("i.StudyInstanceUID")]
)
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

INSTANCE_BY_UID = (
    f"SELECT {_INSTANCE_SELECT}, h.header FROM instances i"
    " LEFT JOIN instance_headers h ON h.instance_id = i.id WHERE i.SOPInstanceUID = ?"
)
SERIES_BY_UID = f"SELECT {_SERIES_SELECT} FROM {_FROM_SERIES} WHERE se.SeriesInstanceUID = ?"
IDLE_SERIES = (
    f"SELECT {_SERIES_SELECT} FROM {_FROM_SERIES}"
    " WHERE se.complete = 0 AND se.last_received_at < ?"
    " ORDER BY se.last_received_at, se.SeriesInstanceUID"
)


def studies_sql(query: Query) -> tuple[str, list[Any]]:
    """SQL and parameters of the matching studies in the query's order, then by UID."""
    key, descending = query.study_order()  # one of a fixed set of column names
    where = _Where.of(query)
    conditions = list(where.study)
    if where.series or where.instance:
        conditions.append(
            "st.StudyInstanceUID IN (SELECT se.StudyInstanceUID FROM series se"
            f"{where_sql(where.series + where.instance_in())})"
        )
    params = where.study_params + where.series_params + where.instance_params
    sql = (
        f"SELECT {_STUDY_SELECT} FROM studies st{where_sql(conditions)}"
        f" ORDER BY st.{key}{' DESC' if descending else ''}, st.StudyInstanceUID"
        f"{_page_sql(query, params)}"
    )
    return sql, params


def series_sql(query: Query) -> tuple[str, list[Any]]:
    """SQL and parameters of the matching series, by StudyInstanceUID, SeriesNumber (none
    first), UID."""
    where = _Where.of(query)
    conditions = where.study + where.series + where.instance_in()
    params = where.study_params + where.series_params + where.instance_params
    sql = (
        f"SELECT {_SERIES_SELECT} FROM {_FROM_SERIES}{where_sql(conditions)}"
        " ORDER BY se.StudyInstanceUID, se.SeriesNumber, se.SeriesInstanceUID"
        f"{_page_sql(query, params)}"
    )
    return sql, params


def instances_sql(
    query: Query, *, with_header: bool, peek: Sequence[str] = ()
) -> tuple[str, list[Any]]:
    """SQL and parameters of the matching instances, by SeriesInstanceUID, InstanceNumber (none
    first), UID; the header when asked for, then the first value of each ``peek`` tag in it."""
    where = _Where.of(query)
    conditions = where.study + where.series + where.instance
    require_tags(peek)
    peek_paths = [f'$."{tag}".Value[0]' for tag in peek]
    params = [*peek_paths, *where.study_params, *where.series_params, *where.instance_params]
    peek_sql = ", json_quote(json_extract(h.header, ?))" * len(peek)
    header_sql = f", h.header{peek_sql}" if with_header else ""
    header_join = " LEFT JOIN instance_headers h ON h.instance_id = i.id" if with_header else ""
    if where.instance or not (where.study or where.series):
        tables = _FROM_INSTANCES_BY_INSTANCE
    else:
        tables = _FROM_INSTANCES_BY_STUDY if where.study else _FROM_INSTANCES_BY_SERIES
    sql = (
        f"SELECT {_INSTANCE_SELECT}{header_sql} FROM {tables}{header_join}"
        f"{where_sql(conditions)}"
        " ORDER BY i.SeriesInstanceUID, i.InstanceNumber, i.SOPInstanceUID"
        f"{_page_sql(query, params)}"
    )
    return sql, params


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
        if query.projects:
            where.study.append(
                "st.StudyInstanceUID IN (SELECT p.StudyInstanceUID FROM study_projects p"
                f" WHERE p.project IN ({', '.join('?' for _ in query.projects)}))"
            )
            where.study_params += query.projects
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
            f"{where_sql(self.instance)})"
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


def where_sql(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _page_sql(query: Query, params: list[Any]) -> str:
    """LIMIT/OFFSET for the query (appending their parameters); every order ends in a UID, so
    pages are stable."""
    if query.limit is None and not query.offset:
        return ""
    params += [-1 if query.limit is None else query.limit, query.offset]
    return " LIMIT ? OFFSET ?"


# -- rows to records ----------------------------------------------------------------------------


def _project_list(column: str | None) -> list[str]:
    return sorted(column.split(",")) if column else []


def study_record(row: tuple[Any, ...]) -> StudyRecord:
    *values, projects, modalities = row
    record = StudyRecord(**dict(zip(_STUDY_NAMES, values, strict=True)))
    record.ModalitiesInStudy = sorted(modalities.split(",")) if modalities else []
    record.projects = _project_list(projects)
    return record


def series_record(row: tuple[Any, ...]) -> SeriesRecord:
    record = SeriesRecord(**dict(zip(_SERIES_NAMES, row, strict=True)))
    record.complete = bool(record.complete)
    record.projects = _project_list(row[-1])
    return record


def header_text(row: tuple[Any, ...], peek: Sequence[str]) -> HeaderText:
    """A row of :func:`instances_sql` with the header and ``peek`` as a :class:`HeaderText`."""
    count = len(INSTANCE_COLUMNS)
    text, *peeked = row[count + 1 :]
    record = instance_record(row[: count + 1], with_header=False)
    values = [json.loads(value) for value in peeked]  # each as JSON text: small, and exact
    return HeaderText(record, text or "{}", dict(zip(peek, values, strict=True)))


def instance_record(row: tuple[Any, ...], *, with_header: bool) -> InstanceRecord:
    count = len(INSTANCE_COLUMNS)
    record = InstanceRecord(**dict(zip(INSTANCE_COLUMNS, row[:count], strict=True)))
    record.projects = _project_list(row[count])
    if with_header:
        record.header = json.loads(row[count + 1]) if row[count + 1] else {}
    return record
