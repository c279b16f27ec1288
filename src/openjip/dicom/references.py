"""The series and instances a DICOM object says it was made from, read from its JSON header.

A SEG names its source series in ReferencedSeriesSequence (0008,1115) and its source images in
SourceImageSequence (0008,2112), also inside the functional groups; an SR names its evidence in
CurrentRequestedProcedureEvidenceSequence (0040,A375) > ReferencedSeriesSequence. The header is
searched at every depth, so each of these is found where the IOD puts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

REFERENCED_SERIES_SEQUENCE = "00081115"
SOURCE_IMAGE_SEQUENCE = "00082112"
SERIES_INSTANCE_UID = "0020000E"
REFERENCED_SOP_INSTANCE_UID = "00081155"


def referenced_series(header: dict[str, Any]) -> list[str]:
    """SeriesInstanceUIDs of every ReferencedSeriesSequence item, in header order, once each."""
    return _unique(_values_in_items(header, REFERENCED_SERIES_SEQUENCE, SERIES_INSTANCE_UID))


def source_instances(header: dict[str, Any]) -> list[str]:
    """ReferencedSOPInstanceUIDs of every SourceImageSequence item, in header order, once each."""
    return _unique(_values_in_items(header, SOURCE_IMAGE_SEQUENCE, REFERENCED_SOP_INSTANCE_UID))


def _values_in_items(dataset: dict[str, Any], sequence: str, attribute: str) -> Iterator[str]:
    for tag, element in dataset.items():
        if element.get("vr") != "SQ":
            continue
        for item in element.get("Value") or ():
            if tag == sequence:
                yield from (str(value) for value in (item.get(attribute) or {}).get("Value") or ())
            yield from _values_in_items(item, sequence, attribute)


def _unique(values: Iterator[str]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))
