"""Validate, store durably, then index one DICOM Part-10 instance, into the projects the caller
names; a re-sent instance whose bytes differ from the stored one is refused (the first copy is
kept) unless the ingestor was made to replace such copies. A project whose policy rewrites what
it stores (de-identification on ingest, :mod:`openjip.deid.policy`) gets the rewritten bytes
only: the received ones are never stored."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from openjip.access.projects import ProjectMarkers
from openjip.dicom import (
    InvalidUID,
    ParsedInstance,
    UnreadableInstance,
    instance_key,
    read_instance,
    record_from_header,
)
from openjip.dicom.header import DEFAULT_MAX_SEQUENCE_DEPTH
from openjip.index.base import DEFAULT_PROJECTS, InstanceRecord, InvalidRecord, MetadataIndex
from openjip.ingest.results import RESULT_SOURCE_AE, source_series
from openjip.storage.base import ObjectStore


class InvalidInstance(ValueError):
    """The data is not an instance openjip can keep: unparseable, a UID missing/invalid, or
    contradicting what is indexed (a series already known in another study)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InstanceConflict(InvalidInstance):
    """The SOP instance is stored already with other bytes, and replacing is off: the stored
    copy stays, the new one is dropped."""


class IngestPolicy(Protocol):
    """What instances stored into some projects become first (:mod:`openjip.deid.policy`)."""

    def on_ingest(self, projects: Sequence[str]) -> Callable[[bytes], bytes] | None:
        """The rewrite of an instance stored into ``projects`` (a ``ValueError`` refuses it),
        or None to store it as received."""


@dataclass(frozen=True)
class IngestResult:
    """What one ingest did."""

    record: InstanceRecord
    new: bool
    """``False`` when the index already held this SOP instance (a re-send)."""
    store_seconds: float = 0.0
    """Time spent writing the object durably (for the store-latency histogram)."""
    replaced: bool = False
    """``True`` when a stored copy with other bytes was replaced (the caller audits it)."""


class Ingestor:
    """Ingests whole Part-10 instances into ``store`` and ``index``.

    Errors: :class:`InvalidInstance` for data that cannot be kept (nothing was written);
    the store's ``StoreUnavailable``/``StorageError`` and the index's ``IndexUnavailable``
    pass through. When indexing fails after the object was stored, the object stays: it is
    whole, and a re-send or ``rebuild_index`` indexes it.
    """

    def __init__(
        self,
        store: ObjectStore,
        index: MetadataIndex,
        *,
        clock: Callable[[], float] = time.time,
        max_sequence_depth: int = DEFAULT_MAX_SEQUENCE_DEPTH,
        overwrite: bool = False,
        policy: IngestPolicy | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self.overwrite = overwrite
        self.projects = ProjectMarkers(store)
        self.policy = policy
        self._clock = clock
        self._max_depth = max_sequence_depth

    def ingest_file(
        self,
        path: Path,
        *,
        source_ae: str,
        derived_from: str = "",
        move: bool = False,
        sop_instance_uid: str = "",
        projects: Sequence[str] = DEFAULT_PROJECTS,
    ) -> IngestResult:
        """Ingest the Part-10 file at ``path``; with ``move`` the file may be consumed.

        ``sop_instance_uid``, when given, is the instance the sender named (a C-STORE's
        Affected SOP Instance UID): a dataset with another SOP Instance UID is refused.
        """
        rewrite = self.policy.on_ingest(projects) if self.policy else None
        if rewrite is not None:
            data = self._rewritten(rewrite, path.read_bytes(), sop_instance_uid)
            return self._ingest_bytes(data, source_ae, derived_from, None, projects)
        parsed = self.parse(path)
        record = self._record(parsed, path.stat().st_size, source_ae, derived_from, projects)
        _check_sender_uid(record, sop_instance_uid)
        return self._keep(
            record,
            path.read_bytes,
            lambda: self.store.put_file(record.object_key, path, move=move),
        )

    def ingest_result(
        self, path: Path, *, object_key: str, key_series: str, projects: Sequence[str]
    ) -> IngestResult:
        """Ingest a DICOM output of an analysis step: stored once, at its output key
        ``object_key``, and indexed with ``derived_from`` its source series, found as
        :mod:`openjip.ingest.results` says (``key_series`` is the series part of the key,
        empty for a step over several series), into the ``projects`` of its inputs."""
        parsed = self.parse(path)
        record = self._record(parsed, path.stat().st_size, RESULT_SOURCE_AE, "", projects)
        record.object_key = object_key
        record.derived_from = source_series(
            key_series, parsed.header, record.SeriesInstanceUID, self.index
        )
        return self._keep(record, path.read_bytes, lambda: self.store.put_file(object_key, path))

    def ingest_bytes(
        self,
        data: bytes,
        *,
        source_ae: str,
        derived_from: str = "",
        parsed: ParsedInstance | None = None,
        projects: Sequence[str] = DEFAULT_PROJECTS,
    ) -> IngestResult:
        """Ingest a whole Part-10 file given as bytes; stored exactly as given.

        ``parsed`` is the caller's own :meth:`parse` of ``data``, when it has one, so the
        header is not read twice.
        """
        rewrite = self.policy.on_ingest(projects) if self.policy else None
        if rewrite is not None:
            data, parsed = self._rewritten(rewrite, data, ""), None
        return self._ingest_bytes(data, source_ae, derived_from, parsed, projects)

    def _ingest_bytes(
        self,
        data: bytes,
        source_ae: str,
        derived_from: str,
        parsed: ParsedInstance | None,
        projects: Sequence[str],
    ) -> IngestResult:
        if parsed is None:
            parsed = self.parse(data)
        record = self._record(parsed, len(data), source_ae, derived_from, projects)
        return self._keep(record, lambda: data, lambda: self.store.put(record.object_key, data))

    def _rewritten(
        self, rewrite: Callable[[bytes], bytes], data: bytes, sop_instance_uid: str
    ) -> bytes:
        """``data`` as the project's policy stores it; the sender's SOP Instance UID is
        checked against the received instance first (the rewrite may replace it)."""
        if sop_instance_uid:
            received = self._record(self.parse(data), len(data), "", "", DEFAULT_PROJECTS)
            _check_sender_uid(received, sop_instance_uid)
        try:
            return rewrite(data)
        except ValueError as exc:
            raise InvalidInstance(f"not stored: {exc}") from exc

    def _keep(
        self, record: InstanceRecord, content: Callable[[], bytes], put: Callable[[], object]
    ) -> IngestResult:
        """Store the object with ``put`` (unless a copy with other ``content`` is kept), timed,
        then index its record."""
        replaced = self._replaces(record, content)
        started = time.perf_counter()
        put()
        store_seconds = time.perf_counter() - started
        return IngestResult(record, self._index(record), store_seconds, replaced)

    def _replaces(self, record: InstanceRecord, content: Callable[[], bytes]) -> bool:
        """Whether storing ``record`` replaces other bytes; :class:`InstanceConflict` when it
        would and replacing is off.

        Only an instance the index holds can have been acknowledged (success is answered once
        indexed), so only then is the store asked (a stat, or a HEAD on S3): a new instance
        costs one index lookup. Bytes are read only for a re-send of the same size."""
        if self.index.get_instance(record.SOPInstanceUID) is None:
            return False
        stored = self.store.head(record.object_key)
        if stored is None:
            return False
        if stored.size == record.size and self.store.get(record.object_key) == content():
            return False
        if not self.overwrite:
            # Said first: DIMSE and STOW error comments keep only 64 characters.
            raise InstanceConflict(
                f"stored with other content; the first copy is kept: {record.SOPInstanceUID}"
            )
        return True

    def _index(self, record: InstanceRecord) -> bool:
        """Index the stored record; an object the index refuses is removed again, since its
        key (which holds its study) cannot hold anything indexed."""
        try:
            added = self.index.upsert_instance(record)
        except InvalidRecord as exc:
            self.store.delete(record.object_key)
            raise InvalidInstance(str(exc)) from exc
        self.projects.add(record.StudyInstanceUID, record.projects)  # for index rebuild
        return added

    def _record(
        self,
        parsed: ParsedInstance,
        size: int,
        source_ae: str,
        derived_from: str,
        projects: Sequence[str],
    ) -> InstanceRecord:
        try:
            record = record_from_header(
                parsed, object_key="", size=size, source_ae=source_ae, received_at=self._clock()
            )
        except InvalidUID as exc:
            raise InvalidInstance(str(exc)) from exc
        record.object_key = instance_key(
            record.StudyInstanceUID, record.SeriesInstanceUID, record.SOPInstanceUID
        )
        record.derived_from = derived_from
        record.projects = list(dict.fromkeys(projects)) or list(DEFAULT_PROJECTS)
        return record

    def parse(self, source: Path | bytes) -> ParsedInstance:
        """The header of ``source``; :class:`InvalidInstance` saying why it cannot be read."""
        try:
            return read_instance(source, max_depth=self._max_depth)
        except UnreadableInstance as exc:
            raise InvalidInstance(str(exc)) from exc


def _check_sender_uid(record: InstanceRecord, sop_instance_uid: str) -> None:
    """:class:`InvalidInstance` when the sender named another instance than it sent."""
    if sop_instance_uid and record.SOPInstanceUID != sop_instance_uid:
        raise InvalidInstance(
            f"SOPInstanceUID {record.SOPInstanceUID} is not the request's {sop_instance_uid}"
        )
