"""The MetadataIndex interface, and the failure that only the index itself can have.

The records it keeps, the :class:`Query` it answers and the errors of bad input live in
:mod:`openjip.records` (below every package that needs them); they are re-exported here.
"""

from __future__ import annotations

import abc
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    "HeaderText",
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


_TAG = re.compile(r"[0-9A-F]{8}\Z")


class IndexUnavailable(IndexError_):
    """The index cannot be read or written now."""


def require_tags(tags: Sequence[str]) -> None:
    """Raise :class:`InvalidQuery` unless every one of ``tags`` is a DICOM JSON tag."""
    for tag in tags:
        if not _TAG.match(tag):
            raise InvalidQuery(f"not a DICOM JSON tag (8 upper-case hex digits): {tag!r}")


def header_json(header: dict[str, Any]) -> str:
    """The compact JSON text of a DICOM JSON header, as the index keeps and serves it."""
    return json.dumps(header, separators=(",", ":"), ensure_ascii=False, check_circular=False)


@dataclass(frozen=True)
class HeaderText:
    """One instance's header as the DICOM JSON text the index holds, and the first values of a
    few of its top-level attributes (read without parsing the whole text in Python)."""

    record: InstanceRecord
    """The instance, its ``header`` left empty."""
    json: str
    """The header as a DICOM JSON object (PS3.18 F.2), bulk data left out."""
    peeked: dict[str, Any]
    """First ``Value`` of each peeked tag at the header's top level; ``None`` if absent/empty."""


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
        """Studies having at least one series/instance that matches, in ``query.order`` then by
        UID (by StudyDate unless asked otherwise)."""

    @abc.abstractmethod
    def find_series(self, query: Query) -> list[SeriesRecord]:
        """Series that match, ordered by StudyInstanceUID, SeriesNumber, UID."""

    @abc.abstractmethod
    def find_instances(self, query: Query, *, with_header: bool = False) -> list[InstanceRecord]:
        """Instances that match, ordered by series then InstanceNumber; headers when asked."""

    def find_header_texts(self, query: Query, peek: Sequence[str] = ()) -> list[HeaderText]:
        """Instances that match (ordered as :meth:`find_instances`) with their headers as JSON
        text, peeking at the top-level tags ``peek`` (8 upper-case hex digits each).

        This default parses and re-serialises each header; a backend that stores the text
        answers it as stored, which is what makes large metadata answers cheap.
        """
        require_tags(peek)
        found = []
        for record in self.find_instances(query, with_header=True):
            header, record.header = record.header, {}
            text = header_json(header)
            peeked = {tag: (header.get(tag, {}).get("Value") or [None])[0] for tag in peek}
            found.append(HeaderText(record, text, peeked))
        return found

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
