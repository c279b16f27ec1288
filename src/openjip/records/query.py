"""What to look for in the metadata index: :class:`Query`, and DICOM date ranges."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from openjip.records.errors import InvalidQuery

STUDY_ORDERS = ("StudyDate", "PatientName", "PatientID", "AccessionNumber")
"""What studies can be ordered by (``Query.order``)."""


@dataclass
class Query:
    """What to look for; every field left empty matches everything.

    ``PatientName`` and ``PatientID`` take DICOM wildcards (``*`` any run, ``?`` one character);
    so do ``AccessionNumber``, ``Modality`` and ``BodyPartExamined``. A lone ``*`` matches
    everything. Matching is case-sensitive except for ``PatientName`` (ASCII case ignored).
    ``StudyDate`` is ``YYYYMMDD``, ``YYYYMMDD-``, ``-YYYYMMDD`` or ``YYYYMMDD-YYYYMMDD``
    (bounds included; a study without a date matches no range).
    UID fields take a list (any of them matches). ``text`` searches StudyDescription,
    SeriesDescription and PatientName: every word must start a word there, case ignored.
    Patient/study fields match the study, Modality/BodyPartExamined/SeriesInstanceUID a series
    of it, SOPInstanceUID an instance of it, at every level (a study matches if any series does).
    """

    PatientID: str = ""
    PatientName: str = ""
    StudyDate: str = ""
    AccessionNumber: str = ""
    Modality: str = ""
    BodyPartExamined: str = ""
    StudyInstanceUID: list[str] = field(default_factory=list)
    SeriesInstanceUID: list[str] = field(default_factory=list)
    SOPInstanceUID: list[str] = field(default_factory=list)
    text: str = ""
    projects: list[str] = field(default_factory=list)
    """Only studies belonging to any of these projects (and their series and instances)."""
    limit: int | None = None
    offset: int = 0
    order: str = "StudyDate"
    """How studies come back: one of :data:`STUDY_ORDERS`, ``-`` before it for descending;
    empty values count as the smallest, ties go by StudyInstanceUID (ascending either way, so
    pages are stable). Series and instances keep their own orders."""

    def study_order(self) -> tuple[str, bool]:
        """``order`` as (attribute, descending); :class:`InvalidQuery` if it is not one."""
        key = self.order.removeprefix("-")
        if key not in STUDY_ORDERS:
            raise InvalidQuery(
                f"cannot order studies by {self.order!r}; by one of {', '.join(STUDY_ORDERS)},"
                " with - before it for descending"
            )
        return key, self.order.startswith("-")

    def study_date_range(self) -> tuple[str | None, str | None]:
        """``StudyDate`` as inclusive (first, last) bounds, ``None`` where open.

        Raises :class:`InvalidQuery` for anything but the four forms above.
        """
        return parse_date_range(self.StudyDate, "StudyDate")


_DICOM_DATE = re.compile(r"\d{8}")


def parse_date_range(value: str, name: str = "date") -> tuple[str | None, str | None]:
    """A DICOM date or date range (``A``, ``A-``, ``-B``, ``A-B``) as inclusive bounds."""
    value = value.strip()
    if not value:
        return None, None
    first, dash, last = value.partition("-")
    if not dash:
        last = first
    if not first and not last:
        raise InvalidQuery(f"{name} {value!r}: expected YYYYMMDD, YYYYMMDD-, -YYYYMMDD or A-B")
    for bound in (first, last):
        if bound and not _DICOM_DATE.fullmatch(bound):
            raise InvalidQuery(f"{name} {value!r}: {bound!r} is not a date YYYYMMDD")
    if first and last and first > last:
        raise InvalidQuery(f"{name} {value!r}: the range ends before it starts")
    return first or None, last or None
