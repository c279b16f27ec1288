"""Recreating the metadata index from the object store alone (recovery)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from openjip.dicom import InvalidUID, UnreadableInstance, read_instance, record_from_header
from openjip.index.base import InstanceRecord, InvalidRecord, MetadataIndex
from openjip.storage.base import ObjectNotFound, ObjectStore

LOGGER = logging.getLogger(__name__)

DICOM_PREFIX = "dicom/"
_BATCH = 200

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each object."""


@dataclass
class RebuildReport:
    """What a rebuild found."""

    scanned: int = 0
    indexed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(object key, reason)`` of every object that could not be indexed."""


def rebuild_index(
    store: ObjectStore, index: MetadataIndex, progress: ProgressCallback | None = None
) -> RebuildReport:
    """Clear ``index`` and index every DICOM object in ``store`` again.

    Unreadable objects are skipped and reported, never deleted. The calling AE comes from
    the file meta's (0002,0016), which the receiver writes; the source series of analysis
    results is not in the files and stays empty; the time of receipt becomes the object's
    modification time.
    """
    objects = list(store.list(DICOM_PREFIX))
    report = RebuildReport()
    index.clear()
    batch: list[InstanceRecord] = []
    for info in objects:
        report.scanned += 1
        try:
            parsed = read_instance(store.get(info.key))
            batch.append(
                record_from_header(
                    parsed,
                    object_key=info.key,
                    size=info.size,
                    source_ae=parsed.source_ae,
                    received_at=info.modified.timestamp(),
                )
            )
        except (UnreadableInstance, InvalidUID, ObjectNotFound) as exc:
            LOGGER.warning("rebuild: skipped %s: %s", info.key, exc)
            report.skipped.append((info.key, str(exc)))
        if len(batch) >= _BATCH:
            _index_batch(index, batch, report)
            batch = []
        if progress is not None:
            progress(report.scanned, len(objects))
    _index_batch(index, batch, report)
    return report


def _index_batch(index: MetadataIndex, batch: list[InstanceRecord], report: RebuildReport) -> None:
    """Index ``batch``; when the index refuses a record, index the others one by one and
    report the refused ones, so one contradictory object cannot stop a recovery."""
    if not batch:
        return
    try:
        index.upsert_instances(batch)
    except InvalidRecord:
        for record in batch:
            try:
                index.upsert_instance(record)
            except InvalidRecord as exc:
                LOGGER.warning("rebuild: skipped %s: %s", record.object_key, exc)
                report.skipped.append((record.object_key, str(exc)))
                continue
            report.indexed += 1
        return
    report.indexed += len(batch)
