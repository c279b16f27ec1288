"""The CT phantom: valid DICOM (dciodvfy), consistent geometry and UIDs, findable anatomy."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from openjip.cli.main import app
from openjip.phantom import ct_anatomy, write_ct_series, write_ct_studies
from openjip.phantom.ct import DEFAULT_COVERAGE_MM

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A full-size series of 40 slices (7.5 mm apart), written once for the module."""
    return write_ct_series(tmp_path_factory.mktemp("ct"), slices=40, patient_id="P1", seed=3)


def _volume(paths: list[Path]) -> sitk.Image:
    """The series as SimpleITK reads it: a 3-D image in HU, the way an analysis step sees it."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(path) for path in paths])
    return reader.Execute()


def test_dciodvfy_finds_no_error_or_warning(series: list[Path]) -> None:
    for path in (series[0], series[20], series[-1]):
        result = subprocess.run(
            ["dciodvfy", str(path)], capture_output=True, text=True, check=False
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "Error" not in output, output
        assert "Warning" not in output, output
        assert "CTImage" in output


def test_header_is_ct_image_storage_with_signed_hu_pixels(series: list[Path]) -> None:
    ds = pydicom.dcmread(series[0])
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT_VR_LITTLE_ENDIAN
    assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID == CT_IMAGE_STORAGE
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.PixelRepresentation) == (512, 512, 16, 1)
    assert ds.Modality == "CT" and ds.PatientID == "P1"
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert abs(float(np.median(hu[:20, :20])) + 1000) < 5  # air in the corner


def test_uids_and_geometry_are_consistent(series: list[Path]) -> None:
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in series]
    assert len({ds.SOPInstanceUID for ds in headers}) == len(series)
    assert len({ds.SeriesInstanceUID for ds in headers}) == 1
    assert len({ds.StudyInstanceUID for ds in headers}) == 1
    assert len({ds.FrameOfReferenceUID for ds in headers}) == 1
    for uid in (headers[0].SOPInstanceUID, headers[0].SeriesInstanceUID):
        assert len(uid) <= 64 and uid.replace(".", "").isdigit()
    assert [ds.InstanceNumber for ds in headers] == list(range(1, len(series) + 1))
    z = [float(ds.ImagePositionPatient[2]) for ds in headers]
    steps = np.diff(z)
    assert np.allclose(steps, -float(headers[0].SliceThickness))
    assert math.isclose(z[0] - z[-1] + abs(steps[0]), DEFAULT_COVERAGE_MM)
    assert [float(v) for v in headers[0].ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]


def test_simpleitk_reads_a_volume_with_the_declared_geometry(series: list[Path]) -> None:
    image = _volume(series)
    assert image.GetSize() == (512, 512, 40)
    spacing = image.GetSpacing()
    assert math.isclose(spacing[0], 400 / 512, rel_tol=1e-4)
    assert math.isclose(spacing[2], DEFAULT_COVERAGE_MM / 40, rel_tol=1e-4)


def test_thresholds_find_body_two_lungs_bone_and_the_lesion(series: list[Path]) -> None:
    image = _volume(series)
    hu = sitk.GetArrayFromImage(image)  # z, y, x
    body = sitk.ConnectedComponent(image > -500)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(body)
    volumes = sorted((stats.GetPhysicalSize(label), label) for label in stats.GetLabels())
    # The body (with heart, bone, liver) and, enclosed in lung, the nodule: nothing else.
    assert len(volumes) == 2
    lesion_volume, lesion_label = volumes[0]
    lesion = ct_anatomy(slices=40, patient_id="P1", seed=3).lesion
    centroid = stats.GetCentroid(lesion_label)
    assert math.dist(centroid, (lesion.x, lesion.y, lesion.z)) < 2.0
    # Thick slices through a sphere: discs as thick as the slice spacing.
    spacing = image.GetSpacing()[2]
    slice_z = [image.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(40)]
    expected = sum(math.pi * lesion.radius_at(z) ** 2 * spacing for z in slice_z)
    assert 0.8 * expected < lesion_volume < 1.2 * expected
    assert 20 < float(np.mean(hu[sitk.GetArrayFromImage(body) == lesion_label])) < 50

    outside_air = sitk.ConnectedThreshold(image, seedList=[(0, 0, 0)], lower=-2000, upper=-500)
    lungs = sitk.ConnectedComponent((image < -500) - outside_air)
    stats.Execute(lungs)
    lung_labels = [label for label in stats.GetLabels() if stats.GetPhysicalSize(label) > 1e5]
    assert len(lung_labels) == 2
    centres = sorted(stats.GetCentroid(label)[0] for label in lung_labels)
    assert centres[0] < -40 and centres[1] > 40  # patient right and left
    assert -880 < float(np.median(hu[sitk.GetArrayFromImage(lungs) > 0])) < -820

    bone = hu > 300
    assert bone.sum() > 1000
    assert float(np.median(hu[bone])) > 700


def test_same_arguments_same_instances_new_seed_new_data(tmp_path: Path) -> None:
    first = write_ct_series(tmp_path / "a", slices=2, rows=32, columns=32, seed=1)
    again = write_ct_series(tmp_path / "b", slices=2, rows=32, columns=32, seed=1)
    other = write_ct_series(tmp_path / "c", slices=2, rows=32, columns=32, seed=2)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert pydicom.dcmread(first[0]).StudyInstanceUID != pydicom.dcmread(other[0]).StudyInstanceUID


def test_studies_group_series_per_patient(tmp_path: Path) -> None:
    paths = write_ct_studies(tmp_path, series=3, series_per_study=2, slices=2, rows=32, columns=32)
    assert len(paths) == 6
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in paths]
    by_series = {ds.SeriesInstanceUID: (ds.PatientID, ds.StudyInstanceUID) for ds in headers}
    assert len(by_series) == 3
    assert sorted(by_series.values())[0][1] == sorted(by_series.values())[1][1]
    assert {ds.PatientID for ds in headers} == {"PHANTOM-0001", "PHANTOM-0002"}
    assert len({ds.SOPInstanceUID for ds in headers}) == 6
    assert (tmp_path / "PHANTOM-0001" / "002" / "CT00002.dcm").is_file()


def test_cli_writes_series_and_reports_json(tmp_path: Path) -> None:
    args = ["phantom", str(tmp_path), "--series", "2", "--slices", "3", "--size", "32", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["instances"] == 6 and summary["series"] == 2
    assert len(list(tmp_path.rglob("*.dcm"))) == 6


@pytest.mark.parametrize(
    "args",
    [["--slices", "0"], ["--size", "8"], ["--series", "-1"]],
)
def test_cli_refuses_bad_numbers(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["phantom", str(tmp_path), *args])
    assert result.exit_code != 0
    assert not list(tmp_path.rglob("*.dcm"))


def test_cli_reports_an_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(app, ["phantom", str(blocker / "ct"), "--slices", "1"])
    assert result.exit_code == 1
    assert "cannot write the phantom" in result.output
