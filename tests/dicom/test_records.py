"""Header reading, DICOM JSON and index records of real files (pydicom's test data)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from openjip.dicom import (
    InvalidUID,
    UnreadableInstance,
    check_uid,
    dicom_json_header,
    instance_key,
    instance_record,
    read_instance,
    record_from_header,
)


def _part10(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "1.2.3")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", "1.2.3.4")
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=syntax == ImplicitVRLittleEndian, enforce_file_format=True)
    return buffer.getvalue()


def _dataset() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Doe^Jane=Ideo^Graphic"
    ds.PatientID = "P1"
    ds.Modality = "CT"
    ds.SeriesNumber = "7"
    ds.InstanceNumber = "12"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SliceThickness = "1.25"
    ds.Rows = 2
    ds.Columns = 2
    ds.PixelRepresentation = 1
    ds.BitsAllocated = 16
    ds.SmallestImagePixelValue = -5
    ds.PixelData = b"\0" * 8
    ds.add_new(0x60003000, "OW", b"\1" * 4096)  # OverlayData
    return ds


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_fast_header_matches_pydicom(syntax: str) -> None:
    data = _part10(_dataset(), syntax)
    parsed = read_instance(data)
    expected = dicom_json_header(dcmread(io.BytesIO(data), stop_before_pixels=True))
    assert parsed.transfer_syntax == syntax
    assert json.dumps(parsed.header, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert "7FE00010" not in parsed.header
    assert "60003000" not in parsed.header  # overlay data is bulk
    assert parsed.header["00280106"] == {"vr": "SS", "Value": [-5]}


def test_record_fields_are_normalised() -> None:
    data = _part10(_dataset())
    record = record_from_header(
        read_instance(data), object_key="k", size=len(data), source_ae=" SCU ", received_at=1.0
    )
    assert record.PatientName == "Doe^Jane=Ideo^Graphic"
    assert record.SeriesNumber == 7
    assert record.InstanceNumber == 12
    assert record.Modality == "CT"
    assert record.source_ae == "SCU"
    assert record.header["00100010"]["Value"] == [
        {"Alphabetic": "Doe^Jane", "Ideographic": "Ideo^Graphic"}
    ]


def test_record_from_a_pydicom_dataset() -> None:
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    record = instance_record(ds, object_key="k", size=1, source_ae="A", received_at=2.0)
    assert record.SOPInstanceUID == ds.SOPInstanceUID
    assert record.PatientName == str(ds.PatientName)
    assert record.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    assert "7FE00010" not in record.header


def test_truncated_instance_is_refused() -> None:
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    with pytest.raises(UnreadableInstance, match="truncated"):
        read_instance(data[: len(data) - 100])
    with pytest.raises(UnreadableInstance, match="Part-10"):
        read_instance(b"garbage" * 40)


def _with_large_header() -> Dataset:
    ds = _dataset()
    ds.ImageComments = "x" * 10_000
    ds.add_new(0x00091010, "LO", "OPENJIP")  # private creator
    ds.add_new(0x00091011, "OB", b"\2" * 100_000)  # left out as bulk, but must be skipped
    ds.add_new(0x00091012, "LO", "after the large element")
    return ds


def _with_big_pixels_and_a_trailer() -> Dataset:
    ds = _dataset()
    ds.Rows, ds.Columns = 256, 256
    ds.PixelData = b"\0" * (256 * 256 * 2)
    ds.add_new(0xFFFCFFFC, "OB", b"\0" * 16)  # data set trailing padding
    return ds


@pytest.mark.parametrize(
    "make", [_dataset, _with_large_header, _with_big_pixels_and_a_trailer], ids=lambda f: f.__name__
)
def test_a_file_reads_as_its_bytes_do(make: Any, tmp_path: Path) -> None:
    """read_instance of a file reads its start first and the whole file only when the header
    needs more: the result is the same either way."""
    data = _part10(make())
    path = tmp_path / "instance.dcm"
    path.write_bytes(data)
    assert read_instance(path) == read_instance(data)
    assert read_instance(path).header["00100020"] == {"vr": "LO", "Value": ["P1"]}
    path.write_bytes(data[:-100])
    with pytest.raises(UnreadableInstance, match="truncated"):
        read_instance(path)


def test_uid_checks_and_keys() -> None:
    assert check_uid("1.2.840.10008", "X") == "1.2.840.10008"
    for bad in ("", None, "1..2", "1.2.a", "1" * 65, ".1"):
        with pytest.raises(InvalidUID):
            check_uid(bad, "SOPInstanceUID")
    assert instance_key("1.2", "3.4", "5.6") == "dicom/1.2/3.4/5.6.dcm"
