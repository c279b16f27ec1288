"""The DICOM JSON header (PS3.18 F.2) of a dataset with bulk data left out.

Bulk data is pixel data and its relatives (overlays, waveforms, encapsulated documents,
spectroscopy) plus any other binary value longer than :data:`INLINE_BINARY_LIMIT` bytes:
the index keeps what people search and read, the object store keeps the bytes.
"""

from __future__ import annotations

import logging
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

LOGGER = logging.getLogger(__name__)

BULK_DATA_TAGS: frozenset[int] = frozenset(
    {
        0x7FE00010,  # PixelData
        0x7FE00008,  # FloatPixelData
        0x7FE00009,  # DoubleFloatPixelData
        0x7FE00001,  # ExtendedOffsetTable
        0x7FE00002,  # ExtendedOffsetTableLengths
        0x54001010,  # WaveformData
        0x00420011,  # EncapsulatedDocument
        0x56003000,  # SpectroscopyData
    }
)
"""Tags whose values are bulk data wherever they occur."""

INLINE_BINARY_LIMIT = 1024
"""Binary values up to this many bytes stay in the header as ``InlineBinary``."""

_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})


def _is_bulk(tag: BaseTag, element: DataElement) -> bool:
    if tag in BULK_DATA_TAGS:
        return True
    group, elem = tag >> 16, tag & 0xFFFF
    # Repeating groups: overlay data (60xx,3000), curve data (50xx,3000), audio (50xx,200C).
    if 0x5000 <= group <= 0x60FF and elem in (0x3000, 0x200C):
        return True
    if element.VR in _BINARY_VRS:
        value = element.value
        return value is not None and len(value) > INLINE_BINARY_LIMIT
    return False


def dicom_json_header(ds: Dataset) -> dict[str, Any]:
    """Return ``ds`` as a DICOM JSON object without file meta and without bulk data.

    Elements whose values pydicom cannot encode (broken data from the field) are left out
    so one bad attribute does not keep an instance out of the index.
    """
    result: dict[str, Any] = {}
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset yields elements, not tags
        if tag >> 16 == 0x0002:
            continue
        try:
            element = ds[tag]
            if _is_bulk(tag, element):
                continue
            if element.VR == "SQ":
                items = [dicom_json_header(item) for item in element.value or ()]
                result[f"{tag:08X}"] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            else:
                result[f"{tag:08X}"] = element.to_json_dict(None, INLINE_BINARY_LIMIT)
        except Exception as exc:  # noqa: BLE001 - any decoding error of field data: skip it
            LOGGER.debug("left out %08X from the JSON header: %s", tag, exc)
    return result
