"""DICOM results of analysis steps: stored once, at their output key under ``runs/``, and
indexed like received series with ``derived_from`` naming the series they were computed from.

The link is found the same way when a step publishes a result and when ``index rebuild`` reads
it back, so a rebuilt index holds what the original one did: the source series is the one of the
output key (``runs/<dag>/<run>/<step>/<SeriesInstanceUID>/...``); for a step over several series
(``.../all/...``) it is the first series the result references (ReferencedSeriesSequence), else
the series of the first source image it names (SourceImageSequence) that the index holds.
Both the no-retrigger guard and index-query inputs skip series with ``derived_from`` set.
"""

from __future__ import annotations

from typing import Any

from openjip.dicom.references import referenced_series, source_instances
from openjip.index.base import MetadataIndex

RESULT_SOURCE_AE = "OPENJIP-STEP"
"""``source_ae`` of instances an analysis step produced."""


def source_series(
    key_series: str, header: dict[str, Any], own_series: str, index: MetadataIndex
) -> str:
    """The series a result of header ``header`` (in series ``own_series``) was computed from;
    ``key_series`` is the series part of its output key (empty for ``all``)."""
    if key_series:
        return key_series
    for series in referenced_series(header):
        if series != own_series:
            return series
    for sop_instance_uid in source_instances(header):
        source = index.get_instance(sop_instance_uid)
        if source is not None and source.SeriesInstanceUID != own_series:
            return source.SeriesInstanceUID
    return ""
