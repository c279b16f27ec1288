"""Reading the header of an instance and turning it into an index record.

``read_instance`` takes the fast path of :mod:`openjip.dicom.fastheader` and falls back to
pydicom for encodings the fast path leaves alone; both give the same DICOM JSON header, and
every normalised field of the record is taken from that header.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
from dataclasses import fields
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from openjip.dicom.fastheader import (
    BeyondBuffer,
    FastPathUnsupported,
    MalformedInstance,
    ParsedInstance,
    parse_part10,
)
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
_HEAD_BYTES = 64 * 1024
"""How much of a file ``read_instance`` reads first, hoping the whole header is in it."""


def _json_key(keyword: str) -> str:
    return f"{tag_for_keyword(keyword):08X}"


_KEYS = {name: _json_key(name) for name in (*_STRING_FIELDS, *_INTEGER_FIELDS)}
_UID_KEYS = {name: _json_key(name) for name in _UID_FIELDS}


class UnreadableInstance(ValueError):
    """The bytes are not a DICOM Part-10 instance a header can be read from."""


def read_header(source: Path | BinaryIO) -> Dataset:
    """Read file meta and dataset up to (not including) the pixel data with pydicom.

    Raises :class:`UnreadableInstance` with a short reason for anything that is not a
    readable DICOM Part-10 file.
    """
    try:
        ds = dcmread(source, stop_before_pixels=True)
        # Convert every element now so garbled data fails here, not later.
        for _ in ds.iterall():
            pass
    except InvalidDicomError as exc:
        raise UnreadableInstance(f"not a DICOM Part-10 file: {exc}") from exc
    except (EOFError, OSError, ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise UnreadableInstance(f"cannot parse dataset: {type(exc).__name__}: {exc}") from exc
    if "TransferSyntaxUID" not in ds.file_meta:
        raise UnreadableInstance("file meta has no TransferSyntaxUID")
    return ds


def read_instance(source: Path | bytes) -> ParsedInstance:
    """Transfer syntax and DICOM JSON header (bulk data left out) of a Part-10 instance.

    The whole instance is checked for truncation; pixel data is never decoded.
    Raises :class:`UnreadableInstance` with a reason for data that cannot be an instance.
    """
    try:
        if isinstance(source, bytes):
            return parse_part10(source)
        with source.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size == 0:
                raise UnreadableInstance("empty file")
            # The header is nearly always in the first few kB, and the pixel data after it
            # is skipped: reading just the start is cheaper than mapping the whole file.
            with contextlib.suppress(BeyondBuffer):
                return parse_part10(file.read(_HEAD_BYTES), size)
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    return parse_part10(view)
                finally:
                    view.release()
    except MalformedInstance as exc:
        raise UnreadableInstance(str(exc)) from exc
    except FastPathUnsupported:
        ds = read_header(io.BytesIO(source) if isinstance(source, bytes) else source)
        return ParsedInstance(
            str(ds.file_meta.TransferSyntaxUID),
            dicom_json_header(ds),
            str(ds.file_meta.get("SourceApplicationEntityTitle", "")).strip(),
        )


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
