"""What the Images page searches: studies by patient, dates, modality, body part, description
and accession number, with their series, grouped by patient (a thin face over the index).

Studies are ordered by the index over everything that matches (newest first unless ``sort``
names another of :data:`openjip.index.STUDY_ORDERS`), so the first page of a search of
thousands of studies is the first of the whole order; patients come in the order of their
first study."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openjip.index import STUDY_ORDERS, MetadataIndex, Query, SeriesRecord, StudyRecord
from openjip.web.dicomweb.errors import DicomWebError

MAX_STUDIES = 200
"""Studies one search returns at most (the page says when there are more)."""
DEFAULT_SORT = "-StudyDate"


def _pattern(value: str) -> str:
    """A user's search word as a wildcard match anywhere, unless it holds wildcards itself."""
    value = value.strip()
    if not value or "*" in value or "?" in value:
        return value
    return f"*{value}*"


def _date(value: str, name: str) -> str:
    digits = value.replace("-", "").strip()
    if digits and (len(digits) != 8 or not digits.isdigit()):
        raise DicomWebError(400, f"{name} must be a date YYYY-MM-DD, not {value!r}")
    return digits


def search_query(params: Mapping[str, str]) -> Query:
    """The index query of the page's search form; 400 for a date that is not one, or a sort
    that is none of the orders there are."""
    first, last = _date(params.get("from", ""), "from"), _date(params.get("to", ""), "to")
    sort = params.get("sort") or DEFAULT_SORT
    if sort.removeprefix("-") not in STUDY_ORDERS:
        raise DicomWebError(
            400,
            f"sort must be one of {', '.join(STUDY_ORDERS)} (- first for descending), not {sort!r}",
        )
    return Query(
        PatientName=_pattern(params.get("name", "")),
        PatientID=params.get("patient_id", "").strip(),
        StudyDate=f"{first}-{last}" if first or last else "",
        AccessionNumber=params.get("accession", "").strip(),
        Modality=params.get("modality", "").strip().upper(),
        BodyPartExamined=params.get("body_part", "").strip().upper(),
        text=params.get("description", "").strip(),
        limit=MAX_STUDIES + 1,
        order=sort,
    )


def _series_json(series: SeriesRecord) -> dict[str, Any]:
    return {
        "uid": series.SeriesInstanceUID,
        "modality": series.Modality,
        "description": series.SeriesDescription,
        "number": series.SeriesNumber,
        "body_part": series.BodyPartExamined,
        "instances": series.NumberOfSeriesRelatedInstances,
        "result_of": series.derived_from,
    }


def _study_json(study: StudyRecord, series: list[SeriesRecord]) -> dict[str, Any]:
    return {
        "uid": study.StudyInstanceUID,
        "date": study.StudyDate,
        "description": study.StudyDescription,
        "accession": study.AccessionNumber,
        "modalities": study.ModalitiesInStudy,
        "series": [_series_json(item) for item in series],
    }


def search(index: MetadataIndex, query: Query) -> dict[str, Any]:
    """``{"patients": [{id, name, studies: [... series ...]}], "truncated": bool}``."""
    studies = index.find_studies(query)
    truncated = len(studies) > MAX_STUDIES
    studies = studies[:MAX_STUDIES]
    by_study: dict[str, list[SeriesRecord]] = {study.StudyInstanceUID: [] for study in studies}
    if studies:
        for series in index.find_series(Query(StudyInstanceUID=list(by_study))):
            by_study[series.StudyInstanceUID].append(series)
    patients: dict[tuple[str, str], dict[str, Any]] = {}
    for study in studies:
        key = (study.PatientID, study.PatientName)
        patient = patients.setdefault(
            key, {"id": study.PatientID, "name": study.PatientName, "studies": []}
        )
        patient["studies"].append(_study_json(study, by_study[study.StudyInstanceUID]))
    return {"patients": list(patients.values()), "truncated": truncated}
