"""The Part-10 header the receiver writes before a received dataset.

A received dataset is stored as the sender encoded it, behind a preamble and a file meta
group (0002) written here in explicit VR little endian: pydicom's writer costs ~0.3 ms per
instance for the same bytes. (0002,0016) records the calling AE, so that a rebuilt index
still knows where an instance came from.
"""

from __future__ import annotations

import struct

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

PREAMBLE = b"\0" * 128 + b"DICM"


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _uid(value: str) -> bytes:
    data = value.encode("ascii")
    return data + b"\0" if len(data) % 2 else data


def _text(value: str) -> bytes:
    data = value.encode("ascii", "replace")
    return data + b" " if len(data) % 2 else data


def encode_file_meta(
    *, sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str, source_ae: str
) -> bytes:
    """File meta group (0002) in explicit VR little endian, group length first."""
    source_ae = source_ae.strip()
    body = b"".join(
        (
            struct.pack("<HH2sHL", 0x0002, 0x0001, b"OB", 0, 2) + b"\0\1",
            _element(0x0002, b"UI", _uid(sop_class_uid)),
            _element(0x0003, b"UI", _uid(sop_instance_uid)),
            _element(0x0010, b"UI", _uid(transfer_syntax)),
            _element(0x0012, b"UI", _uid(PYNETDICOM_IMPLEMENTATION_UID)),
            _element(0x0013, b"SH", _text(PYNETDICOM_IMPLEMENTATION_VERSION)),
            _element(0x0016, b"AE", _text(source_ae)) if source_ae else b"",
        )
    )
    return struct.pack("<HH2sHL", 0x0002, 0x0000, b"UL", 4, len(body)) + body
