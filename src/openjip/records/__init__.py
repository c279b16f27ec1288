"""The data model of DESIGN.md that every layer shares, below all of them: the records the
metadata index keeps (instance, series, study, run output), the :class:`Query` it answers, the
object-key layout of the store (``dicom/<study>/<series>/<sop>.dcm``, ``runs/...``) and the UID
rules those keys rely on.

Nothing here imports another openjip package (or pydicom), so ``dicom``, ``workflows``,
``federation`` and the services can all use it without loading the index or the store.
"""

from openjip.records.errors import IndexError_, InvalidQuery, InvalidRecord
from openjip.records.keys import (
    ALL_SERIES,
    DICOM_PREFIX,
    RUNS_PREFIX,
    NotAnOutputKey,
    OutputKey,
    instance_key,
    key_safe,
    output_prefix,
    parse_output_key,
)
from openjip.records.model import (
    DEFAULT_PROJECTS,
    SERIES_FIELDS,
    STUDY_FIELDS,
    InstanceRecord,
    RunOutput,
    SeriesRecord,
    StudyRecord,
    require_uids,
)
from openjip.records.query import STUDY_ORDERS, Query, parse_date_range
from openjip.records.uids import InvalidUID, check_uid, is_valid_uid

__all__ = [
    "ALL_SERIES",
    "DEFAULT_PROJECTS",
    "DICOM_PREFIX",
    "RUNS_PREFIX",
    "SERIES_FIELDS",
    "STUDY_FIELDS",
    "STUDY_ORDERS",
    "IndexError_",
    "InstanceRecord",
    "InvalidQuery",
    "InvalidRecord",
    "InvalidUID",
    "NotAnOutputKey",
    "OutputKey",
    "Query",
    "RunOutput",
    "SeriesRecord",
    "StudyRecord",
    "check_uid",
    "instance_key",
    "is_valid_uid",
    "key_safe",
    "output_prefix",
    "parse_date_range",
    "parse_output_key",
    "require_uids",
]
