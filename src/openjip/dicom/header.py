"""The DICOM JSON header (PS3.18 F.2) of a dataset with bulk data left out, and the one
normalisation both header readers share.

Bulk data is pixel data and its relatives (overlays, waveforms, encapsulated documents,
spectroscopy) plus any other binary value longer than :data:`INLINE_BINARY_LIMIT` bytes:
the index keeps what people search and read, the object store keeps the bytes.

The fast reader (:mod:`openjip.dicom.fastheader`) and pydicom (:func:`dicom_json_header`) turn
the decoded strings of an element into DICOM JSON through the same functions here, so both give
the same header for the same file:

- group lengths (gggg,0000) and file meta (0002,xxxx) are left out, wherever they occur;
- text values lose the padding PS3.5 6.2 calls insignificant (leading and trailing spaces,
  trailing only for ST/LT/UT/UR, NUL bytes), an empty value of several is ``null``
  (PS3.18 F.2.5), an element with no value has no ``Value``;
- IS/DS values are numbers; a value that is not a number, is not finite or (IS) is beyond
  32 bits is ``null`` and logged as a warning, the element's other values stay; FL/FD values
  that are not finite (JSON has no NaN) are ``null`` likewise;
- text of the VRs without a character set (AE, AS, CS, DA, DT, TM, UI) is decoded as Latin-1,
  as pydicom does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

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

DEFAULT_MAX_SEQUENCE_DEPTH = 64
"""How deep sequences may nest unless ``OPENJIP_DICOM__MAX_SEQUENCE_DEPTH`` says otherwise."""

DEFAULT_CHARSET_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI"})
"""Text VRs that are always in the default repertoire; decoded as Latin-1 like pydicom does."""
MULTI_TEXT_VRS = frozenset({*DEFAULT_CHARSET_VRS, "SH", "LO", "UC"})
"""Text VRs whose values are split at backslashes; both ends of each value are padding."""
SINGLE_TEXT_VRS = frozenset({"ST", "LT", "UT", "UR"})
"""Text VRs holding one value; only trailing spaces are padding (leading ones are text)."""
NUMBER_STRING_VRS = frozenset({"IS", "DS"})
_IS_RANGE = (-(2**31), 2**31 - 1)
"""PS3.5 6.2: an IS value is a 32-bit signed integer (a larger one overflowed the index)."""
_FLOAT_VRS = frozenset({"FL", "FD"})
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})
_FILE_META_GROUP = 0x0002


class NestingTooDeep(ValueError):
    """Sequences nest deeper than the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"sequences nested deeper than {limit} levels (OPENJIP_DICOM__MAX_SEQUENCE_DEPTH)"
        )


def tag_text(tag: int) -> str:
    """``(gggg,eeee)`` of a tag, for messages."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def left_out(tag: int) -> bool:
    """Group lengths and file meta elements, which no header keeps."""
    return tag & 0xFFFF == 0 or tag >> 16 == _FILE_META_GROUP


def text_json(vr: str, values: Iterable[str]) -> dict[str, Any]:
    """DICOM JSON of a text element (any VR of :data:`MULTI_TEXT_VRS`/:data:`SINGLE_TEXT_VRS`)
    from its decoded values, padding removed."""
    if vr in SINGLE_TEXT_VRS:
        stripped = [value.rstrip(" \0") for value in values]
    else:
        stripped = [value.strip(" \0") for value in values]
    if not any(stripped):
        return {"vr": vr} if len(stripped) <= 1 else {"vr": vr, "Value": [None] * len(stripped)}
    return {"vr": vr, "Value": [value if value else None for value in stripped]}


def person_names_json(names: Iterable[str]) -> dict[str, Any]:
    """DICOM JSON of a PN element from its decoded values (``alphabetic=ideographic=phonetic``)."""
    values = [_person_name(name) for name in names]
    if not any(values):
        return {"vr": "PN"} if len(values) <= 1 else {"vr": "PN", "Value": values}
    return {"vr": "PN", "Value": values}


def _person_name(name: str) -> dict[str, str] | None:
    name = name.strip(" \0")
    if not name:
        return None
    groups = name.split("=")
    result = {"Alphabetic": groups[0]}
    if len(groups) > 1 and groups[1]:
        result["Ideographic"] = groups[1]
    if len(groups) > 2 and groups[2]:
        result["Phonetic"] = groups[2]
    return result


def numbers_json(tag: int, vr: str, texts: Iterable[str]) -> dict[str, Any]:
    """DICOM JSON of an IS or DS element from its value strings; see the module docstring."""
    values: list[int | float | None] = []
    for part in texts:
        text = part.strip(" \0")
        values.append(_number(tag, vr, text) if text else None)
    if all(value is None for value in values):
        return {"vr": vr}
    return {"vr": vr, "Value": values}


def _number(tag: int, vr: str, text: str) -> int | float | None:
    # int()/float() also take "1_000" and non-ASCII digits, which DICOM's grammar does not.
    if text.isascii() and "_" not in text:
        try:
            number = float(text) if vr == "DS" else int(text)
        except ValueError:
            pass
        else:
            if math.isfinite(number) and (vr == "DS" or _IS_RANGE[0] <= number <= _IS_RANGE[1]):
                return number
    LOGGER.warning("%s %s value %r is not a number: null", tag_text(tag), vr, text[:32])
    return None


def floats_json(vr: str, values: Iterable[float]) -> dict[str, Any]:
    """DICOM JSON of an FL or FD element; values JSON cannot hold (NaN, infinity) are null."""
    numbers = [value if math.isfinite(value) else None for value in values]
    if not numbers:
        return {"vr": vr}
    return {"vr": vr, "Value": numbers}


def sequence_json(items: list[dict[str, Any]]) -> dict[str, Any]:
    """DICOM JSON of a sequence of already converted items."""
    return {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}


def _is_bulk(tag: int, vr: str, value: Any) -> bool:
    if tag in BULK_DATA_TAGS:
        return True
    group, elem = tag >> 16, tag & 0xFFFF
    # Repeating groups: overlay data (60xx,3000), curve data (50xx,3000), audio (50xx,200C).
    if 0x5000 <= group <= 0x60FF and elem in (0x3000, 0x200C):
        return True
    return vr in _BINARY_VRS and value is not None and len(value) > INLINE_BINARY_LIMIT


def dicom_json_header(ds: Dataset, max_depth: int = DEFAULT_MAX_SEQUENCE_DEPTH) -> dict[str, Any]:
    """Return ``ds`` as a DICOM JSON object without file meta and without bulk data.

    Elements whose values pydicom cannot decode (broken data from the field) are left out and
    logged, so one bad attribute does not keep an instance out of the index; IS/DS values are
    read from their strings, so a bad one is ``null`` as on the fast path.
    :class:`NestingTooDeep` when sequences nest deeper than ``max_depth``.
    """
    return _dataset_json(ds, max_depth, max_depth)


def _dataset_json(ds: Dataset, depth_left: int, max_depth: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset yields elements, not tags
        if left_out(tag):
            continue
        raw = ds.get_item(tag)
        try:
            element = ds[tag]
        except Exception as exc:  # noqa: BLE001 - pydicom's conversion of field data, any error
            # pydicom refuses a whole IS/DS element for one bad value; its strings still read.
            vr = (raw.VR or _dictionary_vr(tag)) if isinstance(raw, RawDataElement) else ""
            if isinstance(raw, RawDataElement) and vr in NUMBER_STRING_VRS:
                result[f"{tag:08X}"] = numbers_json(tag, vr, _raw_strings(raw))
            else:
                _left_out_because(tag, exc)
            continue
        if element.VR == "SQ":
            if depth_left == 0:
                raise NestingTooDeep(max_depth)
            items = [_dataset_json(item, depth_left - 1, max_depth) for item in element.value or ()]
            result[f"{tag:08X}"] = sequence_json(items)
            continue
        if _is_bulk(tag, element.VR, element.value):
            continue
        try:
            result[f"{tag:08X}"] = _element_json(tag, raw, element)
        except Exception as exc:  # noqa: BLE001 - pydicom's encoding of field data, any error
            _left_out_because(tag, exc)
    return result


def _left_out_because(tag: int, error: Exception) -> None:
    LOGGER.warning("left out %s of the JSON header: %s", tag_text(tag), error)


def _element_json(
    tag: int, raw: DataElement | RawDataElement, element: DataElement
) -> dict[str, Any]:
    vr = element.VR
    if vr in NUMBER_STRING_VRS:
        if isinstance(raw, RawDataElement):
            return numbers_json(tag, vr, _raw_strings(raw))
        return numbers_json(
            tag, vr, [getattr(v, "original_string", str(v)) for v in _values(element)]
        )
    if vr in MULTI_TEXT_VRS or vr in SINGLE_TEXT_VRS:
        return text_json(vr, [str(value) for value in _values(element)])
    if vr == "PN":
        return person_names_json([str(value) for value in _values(element)])
    if vr in _FLOAT_VRS:
        return floats_json(vr, [float(value) for value in _values(element)])
    return element.to_json_dict(None, INLINE_BINARY_LIMIT)


def _values(element: DataElement) -> list[Any]:
    value = element.value
    if value is None or value == "":
        return []
    if element.VM > 1 or isinstance(value, list | tuple):
        return [item for item in value]
    return [value]


def _raw_strings(raw: RawDataElement) -> list[str]:
    return bytes(raw.value or b"").decode("latin-1").split("\\")


def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""
