"""DICOM objects as openjip sees them: UID checks, object keys, index records and the
DICOM JSON header (PS3.18 F.2) with bulk data left out.

Nothing here decodes pixel data: callers read headers with ``stop_before_pixels`` and keep
the bytes they received untouched.
"""

from openjip.dicom.fastheader import ParsedInstance
from openjip.dicom.header import BULK_DATA_TAGS, dicom_json_header
from openjip.dicom.reading import UnreadableInstance, read_instance
from openjip.dicom.records import instance_record, record_from_header
from openjip.dicom.uids import InvalidUID, check_uid, instance_key, is_valid_uid

__all__ = [
    "BULK_DATA_TAGS",
    "InvalidUID",
    "ParsedInstance",
    "UnreadableInstance",
    "check_uid",
    "dicom_json_header",
    "instance_key",
    "instance_record",
    "is_valid_uid",
    "read_instance",
    "record_from_header",
]
