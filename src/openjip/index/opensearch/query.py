"""Query translation of the OpenSearch backend: a :class:`Query` as filter clauses split by
the level they constrain, and the sort orders of the results.

DICOM matching (PS3.4 C.2.2.2) maps onto OpenSearch term-level queries on keyword fields:
single values are ``term``, wildcards ``wildcard`` (``case_insensitive`` for PatientName), UID
lists ``terms``, date ranges ``range`` with ``basic_date``; ``Query.text`` is a ``match`` with
``operator: and`` on the series' word-prefix field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from openjip.index.base import InvalidQuery, Query

MAX_UIDS = 10_000
"""Longest list of UIDs one query attribute may hold (as in SQLite)."""
STUDY_SORT: list[Any] = [
    {"StudyDate": {"order": "asc", "missing": "_first"}},
    {"StudyInstanceUID": {"order": "asc"}},
]
"""The default order of studies (``Query.order`` of StudyDate)."""


def study_sort(query: Query) -> list[Any]:
    """The sort of ``query.order``: missing values the smallest, ties by UID ascending."""
    key, descending = query.study_order()
    order, missing = ("desc", "_last") if descending else ("asc", "_first")
    return [{key: {"order": order, "missing": missing}}, {"StudyInstanceUID": {"order": "asc"}}]


SERIES_SORT: list[Any] = [
    {"StudyInstanceUID": {"order": "asc"}},
    {"SeriesNumber": {"order": "asc", "missing": "_first"}},
    {"SeriesInstanceUID": {"order": "asc"}},
]
INSTANCE_SORT: list[Any] = [
    {"SeriesInstanceUID": {"order": "asc"}},
    {"InstanceNumber": {"order": "asc", "missing": "_first"}},
    {"SOPInstanceUID": {"order": "asc"}},
]
RUN_OUTPUT_SORT: list[Any] = [{"object_key": {"order": "asc"}}]
IDLE_SORT: list[Any] = [
    {"last_received_at": {"order": "asc"}},
    {"SeriesInstanceUID": {"order": "asc"}},
]

_WORD = re.compile(r"\w+")


@dataclass
class Conditions:
    """The clauses of a query, split by the level they constrain."""

    study: list[dict[str, Any]] = field(default_factory=list)
    """On study fields: valid on study and series documents alike (same field names)."""
    series: list[dict[str, Any]] = field(default_factory=list)
    sop_uids: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    """The words of ``Query.text``."""

    @classmethod
    def of(cls, query: Query) -> Conditions:
        if (query.limit is not None and query.limit < 0) or query.offset < 0:
            raise InvalidQuery("limit and offset must not be negative")
        conditions = cls()
        study = [
            _match("PatientID", query.PatientID),
            _match("PatientName", query.PatientName, case_insensitive=True),
            _match("AccessionNumber", query.AccessionNumber),
            _date_range("StudyDate", query.study_date_range()),
            _uids("StudyInstanceUID", query.StudyInstanceUID),
            terms("projects", query.projects) if query.projects else None,
        ]
        series = [
            _match("Modality", query.Modality),
            _match("BodyPartExamined", query.BodyPartExamined),
            _uids("SeriesInstanceUID", query.SeriesInstanceUID),
        ]
        conditions.study = [clause for clause in study if clause]
        conditions.series = [clause for clause in series if clause]
        if _uids("SOPInstanceUID", query.SOPInstanceUID):
            conditions.sop_uids = list(query.SOPInstanceUID)
        conditions.text = _WORD.findall(query.text)
        return conditions

    def below_study(self) -> bool:
        """Whether a study matches only through its series or instances."""
        return bool(self.series or self.sop_uids or self.text)

    def text_clause(self) -> dict[str, Any]:
        """Every word must start a word of the series' text (prefixes are indexed)."""
        return {"match": {"text": {"query": " ".join(self.text), "operator": "and"}}}


def _match(name: str, value: str, *, case_insensitive: bool = False) -> dict[str, Any] | None:
    """DICOM single-value or wildcard matching; ``None`` for universal matching.

    DICOM has no escape for ``*`` and ``?``: both are always wildcards, as in OpenSearch, whose
    only other special character is the escape ``\\`` itself.
    """
    value = value.strip()
    if not value or value == "*":
        return None
    spec: dict[str, Any] = {"value": value}
    if case_insensitive:
        spec["case_insensitive"] = True
    if "*" in value or "?" in value:
        spec["value"] = value.replace("\\", "\\\\")
        return {"wildcard": {name: spec}}
    return {"term": {name: spec}}


def _date_range(name: str, bounds: tuple[str | None, str | None]) -> dict[str, Any] | None:
    """Inclusive bounds; a document without a date has no value, so no range matches it."""
    first, last = bounds
    if first is None and last is None:
        return None
    spec: dict[str, Any] = {"format": "basic_date"}
    if first is not None:
        spec["gte"] = first
    if last is not None:
        spec["lte"] = last
    return {"range": {name: spec}}


def _uids(name: str, uids: list[str]) -> dict[str, Any] | None:
    if not uids:
        return None
    if len(uids) > MAX_UIDS:
        raise InvalidQuery(f"at most {MAX_UIDS} UIDs per attribute, not {len(uids)}")
    return terms(name, uids)


def terms(name: str, values: list[str]) -> dict[str, Any]:
    return {"terms": {name: list(values)}}


def all_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """All clauses as filters (no scoring: every result is sorted)."""
    return {"bool": {"filter": clauses}} if clauses else {"match_all": {}}
