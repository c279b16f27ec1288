"""Metadata index: the :class:`MetadataIndex` interface, its records, and backends
(SQLite here; OpenSearch for clusters).

``open_index(settings)`` returns the backend the settings choose.
"""

from openjip.index.base import (
    IndexError_,
    IndexUnavailable,
    InstanceRecord,
    InvalidQuery,
    InvalidRecord,
    MetadataIndex,
    Query,
    RunOutput,
    SeriesRecord,
    StudyRecord,
    parse_date_range,
)
from openjip.index.factory import open_index

__all__ = [
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
    "open_index",
    "parse_date_range",
]
