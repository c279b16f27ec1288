"""Answering a :class:`~openjip.statistics.question.Question` from the site's index.

Series that are analysis results (``derived_from`` set) are not counted: a question is about
acquired images. ``SliceThickness`` is no index field; when a question filters or bins on it,
it is read from the stored header (DICOM JSON) of the series' first instance, and a series
without one matches no SliceThickness filter and falls in no bin.
"""

from __future__ import annotations

import itertools
from collections import Counter

from openjip.index import MetadataIndex, Query, SeriesRecord
from openjip.statistics.question import Answer, Cell, NumberRange, Question

NO_VALUE = "(none)"
_SLICE_THICKNESS_TAG = "00180050"


def _slice_thickness(index: MetadataIndex, series: SeriesRecord) -> float | None:
    found = index.find_instances(
        Query(SeriesInstanceUID=[series.SeriesInstanceUID], limit=1), with_header=True
    )
    values = found[0].header.get(_SLICE_THICKNESS_TAG, {}).get("Value") if found else None
    try:
        return float(values[0]) if values else None
    except (TypeError, ValueError):
        return None


def _within(value: float | None, bounds: NumberRange) -> bool:
    if value is None:
        return False
    return (bounds.min is None or value >= bounds.min) and (
        bounds.max is None or value <= bounds.max
    )


def _group_value(series: SeriesRecord, field: str) -> str:
    if field == "StudyYear":
        return series.StudyDate[:4] or NO_VALUE
    return str(getattr(series, field) or NO_VALUE)


def _bin(value: float | None, edges: list[float]) -> str | None:
    if value is None:
        return None
    for low, high in itertools.pairwise(edges):
        if low <= value < high:
            return f"[{low:g}, {high:g})"
    return None


def count_series(index: MetadataIndex, question: Question, *, site_min_cell: int) -> Answer:
    """The answer of this site; cells below ``max(site_min_cell, question.min_cell)`` withheld.

    Raises ``ValueError`` (the index's ``InvalidQuery``) for a date range it cannot run.
    """
    filters = question.filters
    candidates = index.find_series(
        Query(
            Modality=filters.Modality or "",
            BodyPartExamined=filters.BodyPartExamined or "",
            StudyDate=filters.StudyDate or "",
        )
    )
    histogram = question.histogram
    needs_thickness = filters.SliceThickness is not None or (
        histogram is not None and histogram.field == "SliceThickness"
    )
    cells: Counter[tuple[tuple[str, str], ...]] = Counter()
    for series in candidates:
        if series.derived_from:
            continue
        if filters.Manufacturer is not None and series.Manufacturer != filters.Manufacturer:
            continue
        thickness = _slice_thickness(index, series) if needs_thickness else None
        if filters.SliceThickness is not None and not _within(thickness, filters.SliceThickness):
            continue
        key: list[tuple[str, str]] = [
            (field, _group_value(series, field)) for field in question.group_by
        ]
        if histogram is not None:
            value = (
                thickness
                if histogram.field == "SliceThickness"
                else float(series.NumberOfSeriesRelatedInstances)
            )
            label = _bin(value, histogram.edges)
            if label is None:
                continue
            key.append((histogram.field, label))
        cells[tuple(key)] += 1
    min_cell = max(site_min_cell, question.min_cell)
    shown = [
        Cell(group=dict(key), count=number)
        for key, number in sorted(cells.items())
        if number >= min_cell
    ]
    return Answer(
        min_cell=min_cell,
        cells=shown,
        withheld_cells=sum(1 for number in cells.values() if number < min_cell),
    )
