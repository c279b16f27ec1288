"""Issue 16 item 4: the header readers on hostile and broken bytes. Each case failed on the code
before: an exception other than ``UnreadableInstance`` escaped, or the fast path said something
pydicom does not (U+FFFD for Latin-1, every value of an element dropped for one bad number,
file meta kept from inside the dataset, a garbled transfer syntax read as explicit VR LE)."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from openjip.config import Settings
from openjip.dicom import UnreadableInstance, dicom_json_header, read_instance
from openjip.dicom.header import DEFAULT_MAX_SEQUENCE_DEPTH, NestingTooDeep

SEQUENCE_TAG = b"\x08\x00\x15\x11"  # ReferencedSeriesSequence (0008,1115)
ITEM = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
ITEM_END = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
SEQUENCE_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _dataset() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4"
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = "1.2.3.5"
    ds.Modality = "OT"
    ds.Rows = 2
    return ds


def _part10(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _raw(ds: Dataset, tag: int, vr: str, value: bytes) -> None:
    """Put ``value`` into ``ds`` as written, where pydicom would refuse to build it."""
    ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def _explicit(tag: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element with a 16-bit length."""
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr + struct.pack("<H", len(value)) + value


def _pydicom_header(data: bytes) -> dict[str, Any]:
    return dicom_json_header(dcmread(io.BytesIO(data), stop_before_pixels=True))


def _same_as_pydicom(data: bytes) -> dict[str, Any]:
    header = read_instance(data).header
    assert json.dumps(header, sort_keys=True) == json.dumps(_pydicom_header(data), sort_keys=True)
    return header


def test_non_ascii_in_default_repertoire_vrs_is_latin1_as_pydicom_reads_it() -> None:
    data = _part10(_dataset())
    extra = b"".join(
        [
            _explicit(0x00080008, b"CS", b"ORIGINAL\xe9\\PRIMARY "),  # ImageType
            _explicit(0x00080020, b"DA", b"2024\xff101"),  # StudyDate
            _explicit(0x00080030, b"TM", b"12\xb5000"),  # StudyTime
        ]
    )
    at = data.index(b"\x08\x00\x16\x00UI")  # before SOPClassUID, keeping the tag order
    header = _same_as_pydicom(data[:at] + extra + data[at:])
    assert header["00080008"]["Value"] == ["ORIGINALé", "PRIMARY"]
    assert header["00080020"]["Value"] == ["2024ÿ101"]
    assert header["00080030"]["Value"] == ["12µ000"]
    assert "\ufffd" not in json.dumps(header, ensure_ascii=False)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_one_bad_number_is_null_and_the_other_values_stay(syntax: str) -> None:
    """Fast path (little endian) and pydicom's path (big endian) alike."""
    ds = _dataset()
    _raw(ds, 0x00280030, "DS", b"0.5\\abc\\2 ")  # PixelSpacing, one value broken
    _raw(ds, 0x00200013, "IS", b"1A")  # InstanceNumber, the whole value broken
    _raw(ds, 0x00181050, "DS", b"nan\\1.25")  # SpatialResolution: JSON has no NaN
    ds.add_new(0x00189306, "FD", [float("inf"), 3.5])  # SingleCollimationWidth
    header = _same_as_pydicom(_part10(ds, syntax))
    assert header["00280030"] == {"vr": "DS", "Value": [0.5, None, 2.0]}
    assert header["00200013"] == {"vr": "IS"}
    assert header["00181050"] == {"vr": "DS", "Value": [None, 1.25]}
    assert header["00189306"] == {"vr": "FD", "Value": [None, 3.5]}
    json.dumps(header, allow_nan=False)


def test_group_0002_elements_inside_the_dataset_are_left_out_as_pydicom_does() -> None:
    data = _part10(_dataset())
    stray = _explicit(0x00020016, b"AE", b"INTRUDER")  # SourceApplicationEntityTitle
    item = _explicit(0x00020013, b"SH", b"NESTED") + _explicit(0x0020000E, b"UI", b"1.2.3.6\0")
    sequence = SEQUENCE_TAG + b"SQ\0\0\xff\xff\xff\xff" + ITEM + item + ITEM_END + SEQUENCE_END
    at = data.index(b"\x20\x00\x0d\x00UI")  # before StudyInstanceUID
    parsed = read_instance(data[:at] + sequence + data[at:] + stray)
    assert parsed.source_ae == ""
    assert not [tag for tag in parsed.header if tag.startswith("0002")]
    assert parsed.header["00081115"]["Value"] == [{"0020000E": {"vr": "UI", "Value": ["1.2.3.6"]}}]


@pytest.mark.parametrize(
    "syntax",
    [b"1.2.840.10008.1.2.1x", b"\xff\xfe\x00garbage", b"1.2.3.4.5", b"1.2.840.10008.1.2.1."],
)
def test_a_garbled_or_unknown_transfer_syntax_is_refused(syntax: bytes) -> None:
    data = _part10(_dataset())
    at = data.index(b"\x02\x00\x10\x00UI")
    old_length = struct.unpack_from("<H", data, at + 6)[0]
    syntax += b"\0" * (len(syntax) % 2)
    patched = data[: at + 6] + struct.pack("<H", len(syntax)) + syntax + data[at + 8 + old_length :]
    with pytest.raises(UnreadableInstance, match="not a known transfer syntax"):
        read_instance(patched)


def _nested(depth: int, syntax: str = ExplicitVRLittleEndian) -> bytes:
    """A file with ``depth`` sequences of undefined length nested in each other."""
    data = _part10(_dataset(), syntax)
    if syntax == ExplicitVRBigEndian:
        sequence = b"\x00\x08\x11\x15SQ\0\0\xff\xff\xff\xff"
        item, ends = (
            b"\xff\xfe\xe0\x00\xff\xff\xff\xff",
            b"\xff\xfe\xe0\x0d\0\0\0\0\xff\xfe\xe0\xdd\0\0\0\0",
        )
        at = data.index(b"\x00\x20\x00\x0d")  # before StudyInstanceUID
    else:
        implicit = syntax == ImplicitVRLittleEndian
        sequence = SEQUENCE_TAG + (b"" if implicit else b"SQ\0\0") + b"\xff\xff\xff\xff"
        item, ends = ITEM, ITEM_END + SEQUENCE_END
        at = data.index(b"\x20\x00\x0d\x00")
    return data[:at] + (sequence + item) * depth + ends * depth + data[at:]


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_nesting_is_bounded_with_a_clear_refusal(syntax: str) -> None:
    assert read_instance(_nested(8, syntax), max_depth=8).header["00081115"]
    with pytest.raises(UnreadableInstance, match="nested deeper than 8 levels"):
        read_instance(_nested(9, syntax), max_depth=8)
    # 1,000 levels made the fast path's recursion fail with RecursionError.
    with pytest.raises(UnreadableInstance, match=f"deeper than {DEFAULT_MAX_SEQUENCE_DEPTH}"):
        read_instance(_nested(1000, syntax))


def test_nesting_bound_holds_on_pydicoms_path_too() -> None:
    ds = _dataset()
    inner = ds
    for _ in range(5):
        item = Dataset()
        inner.ReferencedSeriesSequence = [item]
        inner = item
    with pytest.raises(NestingTooDeep, match="deeper than 4"):
        dicom_json_header(ds, max_depth=4)
    assert dicom_json_header(ds, max_depth=5)["00081115"]


def test_the_default_depth_is_the_settings_default() -> None:
    assert Settings().dicom.max_sequence_depth == DEFAULT_MAX_SEQUENCE_DEPTH


def _big_endian_with(old: bytes, new: bytes) -> bytes:
    data = _part10(_dataset(), ExplicitVRBigEndian)
    assert data.count(old) == 1
    return data.replace(old, new)


def test_pydicoms_own_exceptions_do_not_escape() -> None:
    """Big endian goes to pydicom; each of these escaped from it before."""
    unknown_vr = _big_endian_with(b"\x00\x08\x00\x60CS", b"\x00\x08\x00\x60QQ")  # Modality
    odd_length = _big_endian_with(
        b"\x00\x28\x00\x10US\x00\x02\x00\x02", b"\x00\x28\x00\x10US\x00\x03\x00\x02\x00"
    )
    for data in (unknown_vr, odd_length):
        header = read_instance(data).header  # the broken element is left out, and logged
        assert header["00080018"]["Value"] == ["1.2.3.4"]
    deflated = _part10(_dataset(), DeflatedExplicitVRLittleEndian)
    meta_end = 144 + struct.unpack_from("<L", deflated, 140)[0]
    with pytest.raises(UnreadableInstance, match="cannot parse dataset: error"):  # zlib.error
        read_instance(deflated[:meta_end] + b"\xff" * 64)
    with pytest.raises(UnreadableInstance, match="nested"):  # RecursionError in pydicom
        read_instance(_nested(1000, ExplicitVRBigEndian))


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
def test_private_tags_get_the_vr_of_pydicoms_private_dictionary(syntax: str) -> None:
    """Implicit VR, or sent as UN: the private creator's dictionary names the VR, as in pydicom."""
    ds = _dataset()
    ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")  # private creator of block (0019,10xx)
    for tag, vr, value in [(0x00191060, "SL", b"\x01\0\0\0"), (0x00191093, "DS", b"63.84 ")]:
        _raw(ds, tag, "UN" if syntax == ExplicitVRLittleEndian else vr, value)
    _raw(ds, 0x001910F5, "UN", b"\x07\x00")  # not in the dictionary: stays UN
    header = _same_as_pydicom(_part10(ds, syntax))
    assert header["00191060"] == {"vr": "SL", "Value": [1]}  # Starting view
    assert header["00191093"] == {"vr": "DS", "Value": [63.84]}  # Auto Prescan Center Frequency
    assert header["001910F5"]["vr"] == "UN"
