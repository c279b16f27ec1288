"""Recreating the metadata index from the object store alone (recovery): the DICOM instances
under ``dicom/`` and the non-DICOM outputs of workflow steps under ``runs/``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from openjip.dicom import InvalidUID, UnreadableInstance, read_instance, record_from_header
from openjip.index.base import InstanceRecord, InvalidRecord, MetadataIndex, RunOutput
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
    run_outputs: int = 0
    """Non-DICOM step outputs (under ``runs/``) recorded again."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(object key, reason)`` of every object that could not be indexed."""


def rebuild_index(
    store: ObjectStore, index: MetadataIndex, progress: ProgressCallback | None = None
) -> RebuildReport:
    """Clear ``index``, index every DICOM object in ``store`` again, then record the step outputs.

    Unreadable objects are skipped and reported, never deleted. The calling AE comes from
    the file meta's (0002,0016), which the receiver writes; the source series of analysis
    results is not in the files and stays empty; the time of receipt becomes the object's
    modification time. Run outputs come back from their keys (see :func:`_run_output`).
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
        objects, lambda info: _instance(store, info), index.upsert_instances, report, one_done
    )
    report.run_outputs = _restore(
        run_objects, lambda info: _run_output(store, info), index.add_run_outputs, report, one_done
    )
    return report


def _instance(store: ObjectStore, info: ObjectInfo) -> InstanceRecord:
    parsed = read_instance(store.get(info.key))
    return record_from_header(
        parsed,
        object_key=info.key,
        size=info.size,
        source_ae=parsed.source_ae,
        received_at=info.modified.timestamp(),
    )


def _run_output(store: ObjectStore, info: ObjectInfo) -> RunOutput | None:
    """The run output an object under ``runs/`` is, its workflow, run, step and source series
    parsed from the key; ``None`` for a DICOM file, a result already indexed from its copy under
    ``dicom/``. :class:`NotAnOutputKey` for a key that does not fit the layout.

    The key holds the run id in its key-safe form (``:`` as ``_``), so that is the run id
    recorded; the time of creation becomes the object's modification time.
    """
    parts = parse_output_key(info.key)
    if _is_dicom(store, info.key):
        return None
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
