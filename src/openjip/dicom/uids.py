"""UID validation and the object keys derived from UIDs (their home is :mod:`openjip.records`,
below every package that needs them; re-exported here)."""

from openjip.records.keys import instance_key
from openjip.records.uids import InvalidUID, check_uid, is_valid_uid

__all__ = ["InvalidUID", "check_uid", "instance_key", "is_valid_uid"]
