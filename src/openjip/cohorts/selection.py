"""Selections of patients, studies and series, and named **cohorts** of them kept in the object
store (``cohorts/<name>.json``) so that the web service and every workflow task read the same;
what people type into a workflow's series field, resolved to series.

A run works on series. A selection names whole patients (PatientID), whole studies
(StudyInstanceUID) or single series; :meth:`Selection.resolve` turns it into the received
series it holds (analysis results are left out). :func:`resolve_identifiers` does the same for
a form field holding SeriesInstanceUIDs, StudyInstanceUIDs, accession numbers or patient IDs.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from openjip.index import MetadataIndex, Query, SeriesRecord
from openjip.records import is_valid_uid
from openjip.storage import ObjectStore

COHORTS_PREFIX = "cohorts/"
COHORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


class SelectionError(ValueError):
    """A selection or cohort that cannot be used; the message says why in plain words."""


@dataclass
class Selection:
    """What a user picked: whole patients, whole studies, single series."""

    patients: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)
    series: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Selection:
        """The selection of a JSON object; :class:`SelectionError` when a part is not a list
        of strings."""
        parts = {}
        for name in ("patients", "studies", "series"):
            value = body.get(name, [])
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise SelectionError(f"{name} must be a list of strings")
            parts[name] = [item.strip() for item in value if item.strip()]
        return cls(**parts)

    def is_empty(self) -> bool:
        """Whether nothing is selected."""
        return not (self.patients or self.studies or self.series)

    def resolve(self, index: MetadataIndex, projects: list[str] | None = None) -> list[str]:
        """The received SeriesInstanceUIDs of the selection in the index's order, of
        ``projects`` only when given; :class:`SelectionError` when it holds none."""
        queries = [Query(SeriesInstanceUID=self.series)] if self.series else []
        if self.studies:
            queries.append(Query(StudyInstanceUID=self.studies))
        queries += [Query(PatientID=patient) for patient in self.patients]
        for query in queries:
            query.projects = list(projects or [])
        if projects is not None and not projects:
            queries = []
        found = _received(series for query in queries for series in index.find_series(query))
        if not found:
            raise SelectionError("the selection holds no series to run on")
        return found


def _received(series: Any) -> list[str]:
    found: list[str] = []
    for item in series:
        if not item.derived_from and item.SeriesInstanceUID not in found:
            found.append(item.SeriesInstanceUID)
    return found


@dataclass
class Cohort:
    """A named selection, saved by someone at some time."""

    name: str
    selection: Selection
    description: str = ""
    created_by: str = ""
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The cohort as stored and as the API shows it."""
        return asdict(self)


def _key(name: str) -> str:
    if not COHORT_NAME.match(name):
        raise SelectionError(
            f"cohort name {name!r}: 1-64 letters, digits, spaces, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return f"{COHORTS_PREFIX}{name.replace(' ', '_')}.json"


def save_cohort(store: ObjectStore, cohort: Cohort) -> Cohort:
    """Store ``cohort`` (replacing one of the same name); refuses an empty selection."""
    if cohort.selection.is_empty():
        raise SelectionError("a cohort needs at least one patient, study or series")
    cohort.created_at = cohort.created_at or time.time()
    store.put(_key(cohort.name), json.dumps(cohort.to_json()).encode())
    return cohort


def load_cohort(store: ObjectStore, name: str) -> Cohort:
    """The cohort called ``name``; :class:`SelectionError` when there is none."""
    key = _key(name)
    if store.head(key) is None:
        raise SelectionError(f"no cohort called {name!r}")
    data = json.loads(store.get(key))
    return Cohort(
        name=data["name"],
        selection=Selection.from_json(data["selection"]),
        description=data.get("description", ""),
        created_by=data.get("created_by", ""),
        created_at=float(data.get("created_at", 0.0)),
    )


def list_cohorts(store: ObjectStore) -> list[Cohort]:
    """Every saved cohort, by name."""
    names = [info.key[len(COHORTS_PREFIX) : -len(".json")] for info in store.list(COHORTS_PREFIX)]
    return sorted(
        (load_cohort(store, name.replace("_", " ")) for name in names), key=lambda c: c.name
    )


def resolve_identifiers(index: MetadataIndex, values: list[str]) -> tuple[list[str], list[str]]:
    """Series of what a person typed: SeriesInstanceUIDs, StudyInstanceUIDs, accession numbers
    or patient IDs, one each. Returns (series, one line per value saying what it matched); a
    UID that matches nothing is kept as a series; :class:`SelectionError` names every other
    value that matched nothing."""
    found: list[SeriesRecord] = []
    given: list[str] = []
    notes: list[str] = []
    unknown: list[str] = []
    for value in (item.strip() for item in values):
        if not value:
            continue
        attempts: list[tuple[str, str | list[str]]] = []
        if is_valid_uid(value):
            attempts += [("SeriesInstanceUID", [value]), ("StudyInstanceUID", [value])]
        attempts += [("AccessionNumber", value), ("PatientID", value)]
        for field_name, match in attempts:
            query = Query()
            setattr(query, field_name, match)
            matched = [s for s in index.find_series(query) if not s.derived_from]
            if matched:
                found += matched
                notes.append(f"{value}: {field_name}, {len(matched)} series")
                break
        else:
            if is_valid_uid(value):
                # Not indexed (yet): taken as a series, whose step then says it is missing.
                given.append(value)
                notes.append(f"{value}: not in the index, taken as a SeriesInstanceUID")
            else:
                unknown.append(value)
    if unknown:
        raise SelectionError(
            "matches no series, study, accession number or patient ID: " + ", ".join(unknown)
        )
    series = _received(found)
    return series + [uid for uid in given if uid not in series], notes
