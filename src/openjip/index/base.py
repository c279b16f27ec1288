"""The MetadataIndex interface, and the failure that only the index itself can have.

The records it keeps, the :class:`Query` it answers and the errors of bad input live in
:mod:`openjip.records` (below every package that needs them); they are re-exported here.
"""

from __future__ import annotations

import abc

from openjip.records.errors import IndexError_, InvalidQuery, InvalidRecord
from openjip.records.model import (
    DEFAULT_PROJECTS,
    InstanceRecord,
    RunOutput,
    SeriesRecord,
    StudyRecord,
    require_uids,
)
from openjip.records.query import Query, parse_date_range

__all__ = [
    "DEFAULT_PROJECTS",
    "IndexError_",
    "IndexUnavailable",
    "InstanceRecord",
    "InvalidQuery",
    "InvalidRecord",
    "MetadataIndex",
    "Query",
    "RunOutput",
    "SeriesRecord",
    "StudyRecord",
    "parse_date_range",
    "require_uids",
]


class IndexUnavailable(IndexError_):
    """The index cannot be read or written now."""


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
