"""Turning the header of an instance into an index record.

Every normalised field of the record is taken from the DICOM JSON header that
:func:`openjip.dicom.reading.read_instance` reads.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from openjip.dicom.fastheader import ParsedInstance
from openjip.dicom.header import dicom_json_header
from openjip.records import InstanceRecord, check_uid

_UID_FIELDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
# Every DICOM-keyword field of the record is filled from the header of the same keyword.
_DICOM_FIELDS = [
    f for f in fields(InstanceRecord) if tag_for_keyword(f.name) and f.name not in _UID_FIELDS
]
_STRING_FIELDS = tuple(f.name for f in _DICOM_FIELDS if f.type == "str")
_INTEGER_FIELDS = tuple(f.name for f in _DICOM_FIELDS if f.type == "int | None")
_PERSON_NAME_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def _json_key(keyword: str) -> str:
    return f"{tag_for_keyword(keyword):08X}"


_KEYS = {name: _json_key(name) for name in (*_STRING_FIELDS, *_INTEGER_FIELDS)}
_UID_KEYS = {name: _json_key(name) for name in _UID_FIELDS}


def _text(element: dict[str, Any] | None) -> str:
    if not element:
        return ""
    values = element.get("Value") or []
    parts = []
    for value in values:
        if isinstance(value, dict):  # person name groups
            value = "=".join(value.get(group, "") for group in _PERSON_NAME_GROUPS).rstrip("=")
        parts.append("" if value is None else str(value))
    return "\\".join(parts).strip()


def _integer(element: dict[str, Any] | None) -> int | None:
    values = (element or {}).get("Value") or []
    if not values or values[0] is None:
        return None
    try:
        return int(values[0])
    except (TypeError, ValueError):
        return None


def record_from_header(
    parsed: ParsedInstance, *, object_key: str, size: int, source_ae: str, received_at: float
) -> InstanceRecord:
    """The index record of a parsed instance; ``InvalidUID`` for a missing/invalid UID."""
    header = parsed.header
    uid = {name: check_uid(_text(header.get(key)), name) for name, key in _UID_KEYS.items()}
    record = InstanceRecord(
        SOPInstanceUID=uid["SOPInstanceUID"],
        SeriesInstanceUID=uid["SeriesInstanceUID"],
        StudyInstanceUID=uid["StudyInstanceUID"],
        object_key=object_key,
        size=size,
        received_at=received_at,
        source_ae=source_ae.strip(),
        header=header,
    )
    for name in _STRING_FIELDS:
        setattr(record, name, _text(header.get(_KEYS[name])))
    for name in _INTEGER_FIELDS:
        setattr(record, name, _integer(header.get(_KEYS[name])))
    record.TransferSyntaxUID = parsed.transfer_syntax
    return record


def instance_record(
    ds: Dataset, *, object_key: str, size: int, source_ae: str, received_at: float
) -> InstanceRecord:
    """The index record of a pydicom dataset; ``InvalidUID`` for a missing/invalid UID."""
    file_meta = getattr(ds, "file_meta", None)
    transfer_syntax = str(file_meta.get("TransferSyntaxUID", "")) if file_meta else ""
    return record_from_header(
        ParsedInstance(transfer_syntax, dicom_json_header(ds)),
        object_key=object_key,
        size=size,
        source_ae=source_ae,
        received_at=received_at,
    )
