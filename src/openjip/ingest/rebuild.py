"""Recreating the metadata index from the object store alone (recovery): the DICOM instances
under ``dicom/``, then under ``runs/`` the DICOM results of workflow steps (linked to their source
series again) and their other outputs, then the projects of every study from the markers under
``projects/`` (:class:`openjip.access.projects.ProjectMarkers`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from openjip.access.projects import ProjectMarkers
from openjip.dicom import InvalidUID, UnreadableInstance, read_instance, record_from_header
from openjip.dicom.header import DEFAULT_MAX_SEQUENCE_DEPTH
from openjip.index.base import InstanceRecord, InvalidRecord, MetadataIndex, RunOutput
from openjip.ingest.results import RESULT_SOURCE_AE, source_series
from openjip.records.keys import DICOM_PREFIX, RUNS_PREFIX, NotAnOutputKey, parse_output_key
from openjip.storage.base import ObjectInfo, ObjectNotFound, ObjectStore

LOGGER = logging.getLogger(__name__)

_BATCH = 200
_PART10_MARKER = (128, b"DICM")
"""Offset and bytes that make an output a DICOM file, as the step runner tells them apart."""

_Written = TypeVar("_Written", InstanceRecord, RunOutput)

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each object."""


@dataclass
class RebuildReport:
    """What a rebuild found."""

    scanned: int = 0
    """DICOM objects (under ``dicom/``) read."""
    indexed: int = 0
    """DICOM objects indexed."""
    results: int = 0
    """DICOM results of steps (under ``runs/``) indexed, each with its source series."""
    run_outputs: int = 0
    """Non-DICOM step outputs (under ``runs/``) recorded again."""
    studies_in_projects: int = 0
    """Studies given back their projects from the store's markers; the others are in
    ``default``."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(object key, reason)`` of every object that could not be indexed."""


def rebuild_index(
    store: ObjectStore,
    index: MetadataIndex,
    progress: ProgressCallback | None = None,
    *,
    max_sequence_depth: int = DEFAULT_MAX_SEQUENCE_DEPTH,
) -> RebuildReport:
    """Clear ``index``, index every DICOM object in ``store`` again, then the step outputs.

    Unreadable objects are skipped and reported, never deleted. The calling AE comes from
    the file meta's (0002,0016), which the receiver writes; the time of receipt becomes the
    object's modification time. A DICOM result of a step gets its source series back as
    publishing found it (:mod:`openjip.ingest.results`); other run outputs come back from
    their keys (see :func:`_run_output`).
    """
    objects = list(store.list(DICOM_PREFIX))
    run_objects = list(store.list(RUNS_PREFIX))
    total = len(objects) + len(run_objects)
    done = 0

    def one_done() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    report = RebuildReport(scanned=len(objects))
    index.clear()
    report.indexed = _restore(
        objects,
        lambda info: _instance(store, info, max_sequence_depth),
        index.upsert_instances,
        report,
        one_done,
    )
    results, others = _split_results(store, run_objects, report, one_done)
    report.results = _restore(
        results,
        lambda info: _result(store, index, info, max_sequence_depth),
        index.upsert_instances,
        report,
        one_done,
    )
    report.run_outputs = _restore(others, _run_output, index.add_run_outputs, report, one_done)
    for study, projects in ProjectMarkers(store).all().items():
        if index.set_study_projects(study, projects, replace=True):
            report.studies_in_projects += 1
    return report


def _instance(store: ObjectStore, info: ObjectInfo, max_depth: int) -> InstanceRecord:
    parsed = read_instance(store.get(info.key), max_depth=max_depth)
    return record_from_header(
        parsed,
        object_key=info.key,
        size=info.size,
        source_ae=parsed.source_ae,
        received_at=info.modified.timestamp(),
    )


def _split_results(
    store: ObjectStore,
    objects: list[ObjectInfo],
    report: RebuildReport,
    one_done: Callable[[], None],
) -> tuple[list[ObjectInfo], list[ObjectInfo]]:
    """The DICOM files among ``objects`` and the others; one gone meanwhile is reported."""
    results: list[ObjectInfo] = []
    others: list[ObjectInfo] = []
    for info in objects:
        try:
            (results if _is_dicom(store, info.key) else others).append(info)
        except ObjectNotFound as exc:
            report.skipped.append((info.key, str(exc)))
            one_done()
    return results, others


def _result(
    store: ObjectStore, index: MetadataIndex, info: ObjectInfo, max_depth: int
) -> InstanceRecord:
    """The record of a step's DICOM result, at its output key, with its source series."""
    parts = parse_output_key(info.key)
    parsed = read_instance(store.get(info.key), max_depth=max_depth)
    record = record_from_header(
        parsed,
        object_key=info.key,
        size=info.size,
        source_ae=RESULT_SOURCE_AE,
        received_at=info.modified.timestamp(),
    )
    record.derived_from = source_series(
        parts.series_uid, parsed.header, record.SeriesInstanceUID, index
    )
    return record


def _run_output(info: ObjectInfo) -> RunOutput:
    """The run output a non-DICOM object under ``runs/`` is, its workflow, run, step and source
    series parsed from the key; :class:`NotAnOutputKey` for a key that does not fit the layout.

    The key holds the run id in its key-safe form (``:`` as ``_``), so that is the run id
    recorded; the time of creation becomes the object's modification time.
    """
    parts = parse_output_key(info.key)
    return RunOutput(
        object_key=info.key,
        workflow=parts.dag_id,
        run_id=parts.run_id,
        step=parts.step,
        SeriesInstanceUID=parts.series_uid,
        size=info.size,
        created_at=info.modified.timestamp(),
    )


def _restore(
    objects: list[ObjectInfo],
    to_record: Callable[[ObjectInfo], _Written | None],
    write: Callable[[list[_Written]], object],
    report: RebuildReport,
    one_done: Callable[[], None],
) -> int:
    """Turn each object into a record (``None``: nothing to record) and write the records in
    batches; objects that cannot be read or do not fit are skipped and reported. Returns how
    many records were written."""
    written = 0
    batch: list[_Written] = []
    for info in objects:
        try:
            record = to_record(info)
            if record is not None:
                batch.append(record)
        except (UnreadableInstance, InvalidUID, NotAnOutputKey, ObjectNotFound) as exc:
            LOGGER.warning("rebuild: skipped %s: %s", info.key, exc)
            report.skipped.append((info.key, str(exc)))
        if len(batch) >= _BATCH:
            written += _write_batch(write, batch, report)
            batch = []
        one_done()
    return written + _write_batch(write, batch, report)


def _is_dicom(store: ObjectStore, key: str) -> bool:
    offset, marker = _PART10_MARKER
    with store.open(key) as stream:
        return stream.read(offset + len(marker))[offset:] == marker


def _write_batch(
    write: Callable[[list[_Written]], object], batch: list[_Written], report: RebuildReport
) -> int:
    """Write ``batch`` with ``write``; when the index refuses a record of it, write the others
    one by one and report the refused ones, so one contradictory object cannot stop a recovery.
    Returns how many were written."""
    if not batch:
        return 0
    try:
        write(batch)
    except InvalidRecord:
        written = 0
        for record in batch:
            try:
                write([record])
            except InvalidRecord as exc:
                LOGGER.warning("rebuild: skipped %s: %s", record.object_key, exc)
                report.skipped.append((record.object_key, str(exc)))
                continue
            written += 1
        return written
    return len(batch)
