"""A fast reader of the header of a Part-10 file straight into DICOM JSON.

pydicom spends ~50 µs per element turning raw elements into Python values; a CT header
costs it ~6 ms, more than the whole per-instance budget of the receiver. This reader walks
the encoded bytes once (little endian, explicit or implicit VR), writes DICOM JSON directly,
leaves bulk data out and checks every length against the data, so a truncated instance is
caught without touching pixel values. Anything unusual (big endian, deflate, code
extensions, odd VRs) raises :class:`FastPathUnsupported` and the caller falls back to
pydicom. Values become DICOM JSON through the normalisation of :mod:`openjip.dicom.header`,
the one pydicom's path uses too.

Whatever the bytes, only this module's exceptions and :class:`~openjip.dicom.header.NestingTooDeep`
leave it: every length is checked against the data before it is used, and sequences nest at
most ``max_depth`` levels.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_VR, private_dictionary_VR
from pydicom.uid import UID

from openjip.dicom.header import (
    BULK_DATA_TAGS,
    DEFAULT_CHARSET_VRS,
    DEFAULT_MAX_SEQUENCE_DEPTH,
    INLINE_BINARY_LIMIT,
    MULTI_TEXT_VRS,
    NUMBER_STRING_VRS,
    SINGLE_TEXT_VRS,
    NestingTooDeep,
    floats_json,
    left_out,
    numbers_json,
    person_names_json,
    sequence_json,
    text_json,
)
from openjip.dicom.uids import is_valid_uid


class FastPathUnsupported(Exception):
    """The data needs pydicom's general reader (not an error in the data by itself)."""


class MalformedInstance(ValueError):
    """The bytes cannot be a complete DICOM instance (truncated, not Part-10)."""


class BeyondBuffer(Exception):
    """The header reaches past the start of the file that was given (see ``parse_part10``)."""


@dataclass
class ParsedInstance:
    """The transfer syntax and the DICOM JSON header of one instance."""

    transfer_syntax: str
    header: dict[str, Any]
    source_ae: str = ""
    """(0002,0016) Source Application Entity Title of the file meta, when written."""


_IMPLICIT_LE = "1.2.840.10008.1.2"
_UNSUPPORTED_SYNTAXES = frozenset({"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"})
_SPECIFIC_CHARACTER_SET = 0x00080005
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_NUMBER_FORMATS = {
    "US": "H",
    "SS": "h",
    "UL": "L",
    "SL": "l",
    "FL": "f",
    "FD": "d",
    "UV": "Q",
    "SV": "q",
}
_NUMBER_STRUCTS = {vr: struct.Struct("<" + fmt) for vr, fmt in _NUMBER_FORMATS.items()}
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_UNPACK_EXPLICIT = struct.Struct("<HH2sH").unpack_from
# fmt: off
_VALID_VRS = (
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT",
    "OB", "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST",
    "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV",
)
# fmt: on
_EXPLICIT_VRS = {vr.encode(): (vr, vr.encode() in _LONG_VRS) for vr in _VALID_VRS}
_UNPACK_U32 = struct.Struct("<L").unpack_from
_UNPACK_U16 = struct.Struct("<H").unpack_from


def _implicit_vr(tag: int, signed_pixels: bool = False) -> str:
    if tag & 0xFFFF == 0:
        return "UL"
    if tag >> 16 & 1 and 0x0010 <= tag & 0xFFFF <= 0x00FF:
        return "LO"  # private creator
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    if vr == "US or SS":
        return "SS" if signed_pixels else "US"
    if vr in ("OB or OW", "US or OW", "US or SS or OW"):
        return "OW"
    return vr


class _Reader:
    def __init__(self, buf: bytes | memoryview, implicit: bool, max_depth: int) -> None:
        self.buf = buf
        self.implicit = implicit
        self.encoding = "iso8859"
        self.signed_pixels = False
        self._implicit_vrs: dict[int, str] = {}
        self._depth_left = max_depth
        self._max_depth = max_depth

    def header(self, pos: int, end: int) -> tuple[int, int, str, int]:
        """Return (tag, value position, VR, length) of the element at ``pos``."""
        if pos + 8 > end:
            raise MalformedInstance(f"truncated: element header at byte {pos}")
        if pos + 8 > len(self.buf):
            raise BeyondBuffer
        group, element, raw_vr, short_length = _UNPACK_EXPLICIT(self.buf, pos)
        tag = group << 16 | element
        if group == 0xFFFE or self.implicit:
            length = _UNPACK_U32(self.buf, pos + 4)[0]
            if group == 0xFFFE:
                return tag, pos + 8, "", length
            vr = self._implicit_vrs.get(tag)
            if vr is None:
                vr = self._implicit_vrs[tag] = _implicit_vr(tag, self.signed_pixels)
            return tag, pos + 8, vr, length
        known = _EXPLICIT_VRS.get(raw_vr)
        if known is None:
            raise FastPathUnsupported(f"odd VR {raw_vr!r}")
        vr, long_length = known
        if long_length:
            if pos + 12 > end:
                raise MalformedInstance(f"truncated: element header at byte {pos}")
            if pos + 12 > len(self.buf):
                raise BeyondBuffer
            return tag, pos + 12, vr, _UNPACK_U32(self.buf, pos + 8)[0]
        return tag, pos + 8, vr, short_length

    def dataset(self, pos: int, end: int, *, top: bool) -> tuple[dict[str, Any], int]:
        """Read elements from ``pos`` until ``end`` or an item delimiter."""
        result: dict[str, Any] = {}
        # Like pydicom's stop_before_pixels: what follows the pixel data is checked, not kept.
        after_pixels = False
        while pos < end:
            if top and end - pos < 8:
                if end > len(self.buf):
                    raise BeyondBuffer
                if not any(self.buf[pos:end]):
                    return result, end  # trailing padding some writers leave
            tag, value_pos, vr, length = self.header(pos, end)
            if tag == _ITEM_END:
                return result, value_pos
            if tag >> 16 == 0xFFFE:
                raise FastPathUnsupported(f"delimiter {tag:08X} inside a dataset")
            if vr == "UN" and tag >> 16 & 1:
                vr = self._private_vr(tag, vr, result)
            elif vr == "UN" and not self.implicit and _implicit_vr(tag) != "UN":
                raise FastPathUnsupported(f"{tag:08X} sent as UN has a known VR")
            if length == _UNDEFINED:
                if vr == "SQ" or (vr == "UN" and self.implicit):
                    items, pos = self.sequence(value_pos, end, undefined=True)
                    if not left_out(tag):
                        result[f"{tag:08X}"] = sequence_json(items)
                elif tag == _PIXEL_DATA and top:
                    pos = self.encapsulated(value_pos, end)
                    after_pixels = True
                else:
                    raise FastPathUnsupported(f"undefined length in {tag:08X} ({vr})")
                continue
            value_end = value_pos + length
            if value_end > end:
                raise MalformedInstance(
                    f"truncated: element ({tag >> 16:04X},{tag & 0xFFFF:04X}) needs "
                    f"{length} bytes, {end - value_pos} left"
                )
            if vr == "SQ":
                items, _ = self.sequence(value_pos, value_end, undefined=False)
                if not left_out(tag):
                    result[f"{tag:08X}"] = sequence_json(items)
            elif not left_out(tag) and not after_pixels and not _is_bulk(tag, vr, length):
                value = self.value(tag, vr, value_pos, value_end)
                if tag == _SPECIFIC_CHARACTER_SET:
                    self._set_charset(value, top)
                elif tag == 0x00280103 and top:  # PixelRepresentation decides US or SS
                    self.signed_pixels = value.get("Value") == [1]
                    self._implicit_vrs.clear()
                result[f"{tag:08X}"] = value
            after_pixels = after_pixels or tag == _PIXEL_DATA
            pos = value_end
        return result, pos

    def sequence(self, pos: int, end: int, *, undefined: bool) -> tuple[list[dict[str, Any]], int]:
        if self._depth_left == 0:
            raise NestingTooDeep(self._max_depth)
        self._depth_left -= 1
        try:
            return self._items(pos, end, undefined=undefined)
        finally:
            self._depth_left += 1

    def _items(self, pos: int, end: int, *, undefined: bool) -> tuple[list[dict[str, Any]], int]:
        items: list[dict[str, Any]] = []
        while pos < end:
            tag, value_pos, _, length = self.header(pos, end)
            if tag == _SEQUENCE_END:
                return items, value_pos
            if tag != _ITEM:
                raise FastPathUnsupported(f"{tag:08X} where a sequence item was expected")
            if length == _UNDEFINED:
                item, pos = self.dataset(value_pos, end, top=False)
            else:
                if value_pos + length > end:
                    raise MalformedInstance("truncated: sequence item runs past the data")
                item, _ = self.dataset(value_pos, value_pos + length, top=False)
                pos = value_pos + length
            items.append(item)
        if undefined:
            raise MalformedInstance("truncated: sequence has no delimiter")
        return items, pos

    def encapsulated(self, pos: int, end: int) -> int:
        while True:
            tag, value_pos, _, length = self.header(pos, end)
            if tag == _SEQUENCE_END:
                return value_pos
            if tag != _ITEM or length == _UNDEFINED:
                raise MalformedInstance("encapsulated pixel data: bad fragment item")
            if value_pos + length > end:
                raise MalformedInstance("truncated: pixel data fragment runs past the data")
            pos = value_pos + length

    def value(self, tag: int, vr: str, start: int, end: int) -> dict[str, Any]:
        if end > len(self.buf):
            raise BeyondBuffer
        raw = bytes(self.buf[start:end])
        if not raw:
            return {"vr": vr}
        if vr in DEFAULT_CHARSET_VRS or vr in NUMBER_STRING_VRS:
            parts = raw.decode("latin-1").rstrip(" \0").split("\\")
            if vr in NUMBER_STRING_VRS:
                return numbers_json(tag, vr, parts)
            return text_json(vr, parts)
        if vr in MULTI_TEXT_VRS:
            return text_json(vr, raw.decode(self.encoding, "replace").split("\\"))
        if vr in SINGLE_TEXT_VRS:
            return text_json(vr, [raw.decode(self.encoding, "replace")])
        if vr == "PN":
            names = raw.decode(self.encoding, "replace").rstrip(" \0").split("\\")
            return person_names_json(names)
        number = _NUMBER_STRUCTS.get(vr)
        if number is not None:
            if len(raw) % number.size:
                raise FastPathUnsupported(f"{vr} value of {len(raw)} bytes")
            values = [item[0] for item in number.iter_unpack(raw)]
            return floats_json(vr, values) if vr in ("FL", "FD") else {"vr": vr, "Value": values}
        if vr == "AT":
            if len(raw) % 4:
                raise FastPathUnsupported("AT value not a multiple of 4 bytes")
            pairs = struct.unpack(f"<{len(raw) // 2}H", raw)
            tags = [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, len(pairs), 2)]
            return {"vr": vr, "Value": tags}
        if vr in _BINARY_VRS:
            return {"vr": vr, "InlineBinary": base64.b64encode(raw).decode("ascii")}
        raise FastPathUnsupported(f"VR {vr}")

    def _private_vr(self, tag: int, vr: str, dataset: dict[str, Any]) -> str:
        """The VR pydicom's private dictionary gives a private tag sent as (or implied) UN,
        found through its block's private creator in ``dataset``, as pydicom looks it up."""
        if tag & 0xFF00 == 0:
            return vr
        creator = (dataset.get(f"{tag >> 16:04X}00{tag >> 8 & 0xFF:02X}") or {}).get("Value")
        if not creator or not creator[0]:
            return vr
        try:
            known = private_dictionary_VR(tag, creator[0])
        except KeyError:
            return vr
        if known == "UN":
            return vr
        if not self.implicit or known.encode() not in _EXPLICIT_VRS:
            raise FastPathUnsupported(f"private {tag:08X} of {creator[0]!r} is {known}")
        return known

    def _set_charset(self, value: dict[str, Any], top: bool) -> None:
        terms = [term for term in value.get("Value", []) if term]
        # ISO 2022 terms switch character sets by escape sequences inside values: pydicom's.
        if (
            len(terms) > 1
            or (terms and terms[0] not in python_encoding)
            or (terms and terms[0].startswith("ISO 2022"))
        ):
            raise FastPathUnsupported(f"character set {terms}")
        encoding = python_encoding[terms[0]] if terms else "iso8859"
        if top:
            self.encoding = encoding
        elif encoding != self.encoding:  # an item with its own character set
            raise FastPathUnsupported(f"character set {terms} inside a sequence item")


def check_transfer_syntax(transfer_syntax: str) -> None:
    """:class:`MalformedInstance` unless ``transfer_syntax`` is one pydicom knows: a garbled
    one must not be read as if it were explicit VR little endian."""
    if not transfer_syntax:
        raise MalformedInstance("file meta has no TransferSyntaxUID")
    if not is_valid_uid(transfer_syntax) or not UID(transfer_syntax).is_transfer_syntax:
        raise MalformedInstance(f"{transfer_syntax[:70]!r} is not a known transfer syntax")


def _is_bulk(tag: int, vr: str, length: int) -> bool:
    if tag in BULK_DATA_TAGS:
        return True
    group, element = tag >> 16, tag & 0xFFFF
    if 0x5000 <= group <= 0x60FF and element in (0x3000, 0x200C):
        return True
    return vr in _BINARY_VRS and length > INLINE_BINARY_LIMIT


def parse_part10(
    buf: bytes | memoryview,
    size: int | None = None,
    *,
    max_depth: int = DEFAULT_MAX_SEQUENCE_DEPTH,
) -> ParsedInstance:
    """Parse file meta and dataset of a Part-10 file held in ``buf``.

    With ``size``, ``buf`` is only the start of a file of ``size`` bytes: enough when the
    header lies in it and the pixel data, which is skipped, reaches to the end. Otherwise
    :class:`BeyondBuffer` is raised and the whole file is needed. Sequences nested deeper
    than ``max_depth`` raise :class:`~openjip.dicom.header.NestingTooDeep`.
    """
    end = len(buf) if size is None else size
    try:
        return _parse_part10(buf, end, max_depth)
    except struct.error as exc:  # an element header past the end of ``buf``
        if size is None:
            raise MalformedInstance("truncated: an element header runs past the data") from exc
        raise BeyondBuffer from exc


def _parse_part10(buf: bytes | memoryview, end: int, max_depth: int) -> ParsedInstance:
    if len(buf) < min(end, 132):
        raise BeyondBuffer
    if end < 132 or bytes(buf[128:132]) != b"DICM":
        raise MalformedInstance("not a DICOM Part-10 file (no DICM prefix)")
    meta_reader = _Reader(buf, implicit=False, max_depth=0)
    pos = 132
    transfer_syntax = source_ae = ""
    while pos + 8 <= end and _UNPACK_U16(buf, pos)[0] == 0x0002:
        tag, value_pos, _, length = meta_reader.header(pos, end)
        if length == _UNDEFINED or value_pos + length > end:
            raise MalformedInstance("truncated or invalid file meta information")
        if value_pos + length > len(buf):
            raise BeyondBuffer
        if tag in (0x00020010, 0x00020016):  # TransferSyntaxUID, SourceApplicationEntityTitle
            text = bytes(buf[value_pos : value_pos + length]).decode("latin-1").strip(" \0")
            if tag == 0x00020010:
                transfer_syntax = text
            else:
                source_ae = text
        pos = value_pos + length
    check_transfer_syntax(transfer_syntax)
    if transfer_syntax in _UNSUPPORTED_SYNTAXES:
        raise FastPathUnsupported(f"transfer syntax {transfer_syntax}")
    reader = _Reader(buf, implicit=transfer_syntax == _IMPLICIT_LE, max_depth=max_depth)
    header, _ = reader.dataset(pos, end, top=True)
    return ParsedInstance(transfer_syntax, header, source_ae)
