"""The MetadataIndex interface and the records it keeps.

Records carry the normalised fields of DESIGN.md under their DICOM keywords (``PatientID``,
``SeriesInstanceUID``, ...) so they serialise to what DICOM tools and ``--json`` users expect;
fields that are ours, not DICOM's, are snake_case (``object_key``, ``received_at``).
Dates stay DICOM strings (``YYYYMMDD``); times of receipt are UNIX seconds.
"""

from __future__ import annotations

import abc
import re
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_PROJECTS = ("default",)
"""Where an instance goes when nobody names a project."""


class IndexError_(Exception):
    """Any failure of the metadata index."""


class IndexUnavailable(IndexError_):
    """The index cannot be read or written now."""


class InvalidQuery(IndexError_, ValueError):
    """A query the index cannot run (bad date range, negative limit, ...); the message says why."""


class InvalidRecord(IndexError_, ValueError):
    """A record that contradicts the index, e.g. a SeriesInstanceUID already in another study."""


@dataclass
class InstanceRecord:
    """One stored SOP instance with the study and series fields it was received with."""

    SOPInstanceUID: str
    SeriesInstanceUID: str
    StudyInstanceUID: str
    SOPClassUID: str = ""
    PatientID: str = ""
    PatientName: str = ""
    PatientBirthDate: str = ""
    PatientSex: str = ""
    StudyDate: str = ""
    StudyTime: str = ""
    StudyDescription: str = ""
    StudyID: str = ""
    AccessionNumber: str = ""
    ReferringPhysicianName: str = ""
    Modality: str = ""
    SeriesNumber: int | None = None
    SeriesDescription: str = ""
    BodyPartExamined: str = ""
    Manufacturer: str = ""
    InstanceNumber: int | None = None
    TransferSyntaxUID: str = ""
    object_key: str = ""
    size: int = 0
    received_at: float = 0.0
    source_ae: str = ""
    derived_from: str = ""
    """SeriesInstanceUID of the series an analysis result was computed from (empty if received)."""
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
class SeriesRecord:
    """One series: its own fields, its study's fields, counts and completion state."""

    SeriesInstanceUID: str
    StudyInstanceUID: str
    PatientID: str = ""
    PatientName: str = ""
    StudyDate: str = ""
    StudyDescription: str = ""
    AccessionNumber: str = ""
    Modality: str = ""
    SeriesNumber: int | None = None
    SeriesDescription: str = ""
    BodyPartExamined: str = ""
    Manufacturer: str = ""
    NumberOfSeriesRelatedInstances: int = 0
    size: int = 0
    first_received_at: float = 0.0
    last_received_at: float = 0.0
    source_ae: str = ""
    derived_from: str = ""
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
class StudyRecord:
    """One study with its patient fields and counts over its series."""

    StudyInstanceUID: str
    PatientID: str = ""
    PatientName: str = ""
    PatientBirthDate: str = ""
    PatientSex: str = ""
    StudyDate: str = ""
    StudyTime: str = ""
    StudyDescription: str = ""
    StudyID: str = ""
    AccessionNumber: str = ""
    ReferringPhysicianName: str = ""
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

    def study_date_range(self) -> tuple[str | None, str | None]:
        """``StudyDate`` as inclusive (first, last) bounds, ``None`` where open.

        Raises :class:`InvalidQuery` for anything but the four forms above.
        """
        return parse_date_range(self.StudyDate, "StudyDate")


def require_uids(record: InstanceRecord) -> None:
    """Raise :class:`InvalidRecord` naming the UIDs an instance record lacks."""
    missing = [
        name
        for name in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
        if not getattr(record, name)
    ]
    if missing:
        raise InvalidRecord(f"instance record without {', '.join(missing)}")


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


class MetadataIndex(abc.ABC):
    """Searchable records of every stored instance, series and study."""

    @abc.abstractmethod
    def upsert_instances(self, records: list[InstanceRecord]) -> int:
        """Add or replace instances (keyed by SOPInstanceUID); return how many were new.

        Series and study records are kept in step. Re-adding an instance is idempotent.
        A new instance in a complete series makes the series incomplete again.
        """

    def upsert_instance(self, record: InstanceRecord) -> bool:
        """Add or replace one instance; ``True`` when it was new."""
        return self.upsert_instances([record]) == 1

    @abc.abstractmethod
    def get_instance(self, sop_instance_uid: str) -> InstanceRecord | None:
        """The instance with its header, or ``None``."""

    @abc.abstractmethod
    def find_studies(self, query: Query) -> list[StudyRecord]:
        """Studies having at least one series/instance that matches, by StudyDate then UID."""

    @abc.abstractmethod
    def find_series(self, query: Query) -> list[SeriesRecord]:
        """Series that match, ordered by StudyInstanceUID, SeriesNumber, UID."""

    @abc.abstractmethod
    def find_instances(self, query: Query, *, with_header: bool = False) -> list[InstanceRecord]:
        """Instances that match, ordered by series then InstanceNumber; headers when asked."""

    @abc.abstractmethod
    def delete_instance(self, sop_instance_uid: str) -> bool:
        """Forget one instance (series and study counts follow); ``True`` if it was there."""

    @abc.abstractmethod
    def set_study_projects(
        self, study_instance_uid: str, projects: list[str], *, replace: bool = False
    ) -> bool:
        """Add the study to ``projects`` (with ``replace``: make them its only projects);
        ``False`` when there is no such study."""

    @abc.abstractmethod
    def idle_series(self, received_before: float) -> list[SeriesRecord]:
        """Incomplete series whose last instance arrived before ``received_before``."""

    @abc.abstractmethod
    def mark_series_complete(
        self, series_instance_uid: str, last_received_at: float
    ) -> SeriesRecord | None:
        """Mark the series complete and bump its version, if its last instance is still the one
        seen at ``last_received_at`` and it is not complete yet.

        Returns the updated record to exactly one caller; concurrent sweepers get ``None``.
        """

    @abc.abstractmethod
    def add_run_outputs(self, outputs: list[RunOutput]) -> None:
        """Record non-DICOM step outputs; recording the same object key again replaces it."""

    @abc.abstractmethod
    def find_run_outputs(
        self, *, workflow: str = "", run_id: str = "", series_instance_uid: str = ""
    ) -> list[RunOutput]:
        """Run outputs matching every given field, by object key."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Remove every record, run outputs included (the first step of a rebuild)."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise :class:`IndexUnavailable` with a reason when the index cannot be used now."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and files."""
