"""Metadata index: the :class:`MetadataIndex` interface and its backends (SQLite here;
OpenSearch for clusters). The records and queries it deals in come from :mod:`openjip.records`
and are re-exported here.

``open_index(settings)`` returns the backend the settings choose.
"""

from openjip.index.base import HeaderText, IndexUnavailable, MetadataIndex
from openjip.index.factory import open_index
from openjip.records import (
    STUDY_ORDERS,
    IndexError_,
    InstanceRecord,
    InvalidQuery,
    InvalidRecord,
    Query,
    RunOutput,
    SeriesRecord,
    StudyRecord,
    parse_date_range,
)

__all__ = [
    "STUDY_ORDERS",
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
    "open_index",
    "parse_date_range",
]
