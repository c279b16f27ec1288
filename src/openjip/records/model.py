"""The records the metadata index keeps, and the field lists its backends are laid out by.

Records carry the normalised fields of DESIGN.md under their DICOM keywords (``PatientID``,
``SeriesInstanceUID``, ...) so they serialise to what DICOM tools and ``--json`` users expect;
fields that are ours, not DICOM's, are snake_case (``object_key``, ``received_at``).
Dates stay DICOM strings (``YYYYMMDD``); times of receipt are UNIX seconds.

The study and series fields are declared once (:class:`StudyKeys`, :class:`StudyFields`,
:class:`SeriesFields`) and inherited by the records that carry them, keyword-only, so that the
UIDs stay the positional arguments: ``InstanceRecord(sop, series, study, Modality="CT")``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from openjip.records.errors import InvalidRecord

DEFAULT_PROJECTS = ("default",)
"""Where an instance goes when nobody names a project."""


@dataclass(kw_only=True)
class StudyKeys:
    """The study fields that records of every level carry: those queries name."""

    PatientID: str = ""
    PatientName: str = ""
    StudyDate: str = ""
    StudyDescription: str = ""
    AccessionNumber: str = ""


@dataclass(kw_only=True)
class StudyFields(StudyKeys):
    """Every study field an instance is received with and its study keeps."""

    PatientBirthDate: str = ""
    PatientSex: str = ""
    StudyTime: str = ""
    StudyID: str = ""
    ReferringPhysicianName: str = ""


@dataclass(kw_only=True)
class SeriesFields:
    """The series fields an instance is received with and its series keeps."""

    Modality: str = ""
    SeriesNumber: int | None = None
    SeriesDescription: str = ""
    BodyPartExamined: str = ""
    Manufacturer: str = ""
    source_ae: str = ""
    derived_from: str = ""
    """SeriesInstanceUID of the series an analysis result was computed from (empty if received)."""


STUDY_FIELDS = tuple(f.name for f in fields(StudyFields))
"""Study-level fields of an instance record that its study keeps."""
SERIES_FIELDS = tuple(f.name for f in fields(SeriesFields))
"""Series-level fields of an instance record that its series keeps."""


@dataclass
class InstanceRecord(SeriesFields, StudyFields):
    """One stored SOP instance with the study and series fields it was received with."""

    SOPInstanceUID: str
    SeriesInstanceUID: str
    StudyInstanceUID: str
    SOPClassUID: str = ""
    InstanceNumber: int | None = None
    TransferSyntaxUID: str = ""
    object_key: str = ""
    size: int = 0
    received_at: float = 0.0
    projects: list[str] = field(default_factory=lambda: list(DEFAULT_PROJECTS))
    """Written: the projects the instance is stored into (its study joins them). Read: the
    projects of its study, which series and instances inherit."""
    header: dict[str, Any] = field(default_factory=dict)
    """The full header as DICOM JSON (PS3.18 F.2), bulk data left out."""

    def to_dict(self, *, with_header: bool = False) -> dict[str, Any]:
        """The record as a JSON-ready dict; the header only when asked for."""
        data = asdict(self)
        if not with_header:
            data.pop("header")
        return data


@dataclass
class SeriesRecord(SeriesFields, StudyKeys):
    """One series: its own fields, its study's keys, counts and completion state."""

    SeriesInstanceUID: str
    StudyInstanceUID: str
    NumberOfSeriesRelatedInstances: int = 0
    size: int = 0
    first_received_at: float = 0.0
    last_received_at: float = 0.0
    complete: bool = False
    """Set by the completion sweep when no instance arrived for the idle window."""
    version: int = 0
    """How many times the series became complete; new instances after that make a new version."""
    projects: list[str] = field(default_factory=list)
    """The projects of its study."""

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return asdict(self)


@dataclass
class StudyRecord(StudyFields):
    """One study with its patient fields and counts over its series."""

    StudyInstanceUID: str
    ModalitiesInStudy: list[str] = field(default_factory=list)
    NumberOfStudyRelatedSeries: int = 0
    NumberOfStudyRelatedInstances: int = 0
    last_received_at: float = 0.0
    projects: list[str] = field(default_factory=list)
    """The projects the study belongs to (a partition of the site's data, for access rules)."""

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return asdict(self)


@dataclass
class RunOutput:
    """A non-DICOM result of an analysis step (NIfTI, JSON, CSV, ...) stored under ``runs/``."""

    object_key: str
    workflow: str
    run_id: str
    """The Airflow run id in the form object keys hold it (``:`` turned to ``_``), so that a
    rebuild from the keys gives the same value."""
    step: str
    SeriesInstanceUID: str = ""
    """The source series the step ran on; empty for a step over several series."""
    size: int = 0
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return asdict(self)


def require_uids(record: InstanceRecord) -> None:
    """Raise :class:`InvalidRecord` naming the UIDs an instance record lacks."""
    missing = [
        name
        for name in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
        if not getattr(record, name)
    ]
    if missing:
        raise InvalidRecord(f"instance record without {', '.join(missing)}")
