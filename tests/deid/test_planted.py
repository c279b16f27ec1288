"""Identifying values planted where profiles tend to miss them — a private tag, items of nested
sequences, Other Patient IDs Sequence, Image Comments, SR text, a name in Study Description, a
name no attribute holds written in DICOM form in Series Description —
are gone from the output bytes; a broken table (one row mutated to K) leaves one, and the
report's check finds it."""

from __future__ import annotations

import copy
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from openjip.deid.profile import build_profile, load_table
from openjip.deid.pseudonyms import Pseudonyms
from openjip.deid.run import deidentify_files
from openjip.deid.walker import Deidentifier

from .conftest import SECRET, deidentifier

PLANTED = ["Plantedname", "Johnathan", "MRN99887766", "OTHERMRN4242", "Quentin Plantdoc"]
PLANTED += ["Referrington", "Ottilie"]


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def planted_ct(folder: Path) -> Path:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName, ds.PatientID = "Plantedname^Johnathan", "MRN99887766"
    ds.private_block(0x0011, "ACME PLANTED", create=True).add_new(0x01, "LO", "MRN99887766")
    deep = _item(ReferencedSOPClassUID=ds.SOPClassUID, ReferencedSOPInstanceUID=ds.SOPInstanceUID)
    deep.PersonName = "Plantedname^Johnathan"  # a listed attribute two items down
    ds.ReferencedSeriesSequence = [_item(SeriesInstanceUID=ds.SeriesInstanceUID)]
    ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence = [deep]
    ds.OtherPatientIDsSequence = [_item(PatientID="OTHERMRN4242", TypeOfPatientID="TEXT")]
    ds.ImageComments = "Patient Johnathan Plantedname, MRN99887766"
    ds.StudyDescription = "CT chest for Johnathan Plantedname"
    ds.SeriesDescription = "Axial, asked by Referrington^Ottilie"  # a name no attribute holds
    text = _item(RelationshipType="CONTAINS", ValueType="TEXT", TextValue="Quentin Plantdoc saw it")
    text.ConceptNameCodeSequence = [
        _item(CodeValue="121071", CodingSchemeDesignator="DCM", CodeMeaning="Finding")
    ]
    ds.ContentSequence = [text]  # SR text, on an image to keep the test to one file
    path = folder / "planted.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def output_bytes(report_outputs: list[tuple[str, str]]) -> bytes:
    assert len(report_outputs) == 1
    return Path(report_outputs[0][1]).read_bytes()


@pytest.mark.parametrize(
    "options",
    [(), ("clean-descriptors", "clean-structured-content", "retain-safe-private")],
    ids=["basic", "clean"],
)
def test_planted_values_are_gone(tmp_path: Path, options: tuple[str, ...]) -> None:
    source = planted_ct(tmp_path)
    report = deidentify_files([source], tmp_path / "out", deidentifier(*options))
    data = output_bytes(report.outputs)
    for value in PLANTED:
        assert value.encode() not in data, value
    assert report.check_passed and not report.failures
    result = pydicom.dcmread(report.outputs[0][1])
    assert "OtherPatientIDsSequence" not in result and result.PatientIdentityRemoved == "YES"
    if "clean-descriptors" in options:  # cleaned, not removed: what is not identifying stays
        assert result.StudyDescription == "CT chest for"
        assert result.SeriesDescription == "Axial, asked by"
        assert result.ContentSequence[0].ConceptNameCodeSequence[0].CodeValue == "121071"


@pytest.mark.parametrize(
    "row", ["Image Comments", "Patient ID", "Person Name", "Private attributes"]
)
def test_the_check_catches_a_mutated_table(tmp_path: Path, row: str) -> None:
    table = copy.deepcopy(load_table())
    mutated = [entry for entry in table["rows"] if entry["name"] == row]
    assert len(mutated) == 1
    mutated[0]["basic"] = "K"
    broken = Deidentifier(build_profile((), table), Pseudonyms(SECRET))
    report = deidentify_files([planted_ct(tmp_path)], tmp_path / "out", broken)
    assert not report.check_passed
    assert all(leak.output == report.outputs[0][1] for leak in report.leaks)
    assert report.to_json()["check"]["passed"] is False
    for value in PLANTED:  # the report names where, never the value itself
        assert value not in str(report.to_json())
