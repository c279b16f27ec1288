"""dicom-to-nifti on real DICOM: shape, orientation (voxel ↔ patient position) and the sidecar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut

from openjip.operators import LoadedOperator, StepFailed, run_operator_locally

if TYPE_CHECKING:
    from conftest import Phantom  # tests/operators/conftest.py, only for the annotations

SAMPLES = 400


def convert(operator: LoadedOperator, source: Path, out: Path) -> tuple[nib.Nifti1Image, dict]:
    result = run_operator_locally(operator, source, out, {"filename": "volume"})
    assert sorted(result.files) == [Path("volume.json"), Path("volume.nii.gz")]
    sidecar = json.loads((out / "volume.json").read_text())
    return nib.load(out / "volume.nii.gz"), sidecar


def dicom_value_at(slices: list[Dataset], lps: np.ndarray) -> float | None:
    """The HU value of the DICOM pixel whose centre is at patient position ``lps``."""
    for ds in slices:
        origin = np.asarray(ds.ImagePositionPatient, float)
        row_cos, col_cos = np.reshape(np.asarray(ds.ImageOrientationPatient, float), (2, 3))
        normal = np.cross(row_cos, col_cos)
        offset = lps - origin
        if abs(offset @ normal) > 0.01:
            continue
        spacing_row, spacing_col = (float(v) for v in ds.PixelSpacing)
        column = offset @ row_cos / spacing_col
        row = offset @ col_cos / spacing_row
        c, r = round(column), round(row)
        assert abs(column - c) < 0.01 and abs(row - r) < 0.01, "voxel centres do not line up"
        return float(apply_modality_lut(ds.pixel_array, ds)[r, c])
    return None


def assert_same_voxels_in_patient_space(image: nib.Nifti1Image, slices: list[Dataset]) -> None:
    """Random voxels of the NIfTI hold the value of the DICOM pixel at the same position."""
    data = np.asanyarray(image.dataobj, dtype=np.float64) * 1.0
    slope, intercept = image.header.get_slope_inter()
    data = data * (1.0 if slope is None else slope) + (0.0 if intercept is None else intercept)
    if data.ndim == 2:
        data = data[..., np.newaxis]
    rng = np.random.default_rng(7)
    indices = np.stack([rng.integers(0, n, SAMPLES) for n in data.shape[:3]], axis=1)
    ras_to_lps = np.diag([-1.0, -1.0, 1.0])
    for ijk in indices:
        ras = image.affine @ np.append(ijk, 1.0)
        expected = dicom_value_at(slices, ras_to_lps @ ras[:3])
        assert expected is not None, f"voxel {ijk} lies on no DICOM slice"
        assert data[tuple(ijk)] == pytest.approx(expected), f"voxel {ijk}"


def test_real_ct_slice(
    dicom_to_nifti: LoadedOperator, any_ct_slice_dir: Path, tmp_path: Path
) -> None:
    source = pydicom.dcmread(next(any_ct_slice_dir.iterdir()))
    image, sidecar = convert(dicom_to_nifti, any_ct_slice_dir, tmp_path / "out")
    assert image.shape[:2] == (source.Columns, source.Rows)
    assert int(np.prod(image.shape[2:])) == 1
    assert nib.aff2axcodes(image.affine) == ("L", "A", "S")
    assert sidecar["Modality"] == "CT"
    assert "PatientName" not in sidecar and "PatientID" not in sidecar
    assert_same_voxels_in_patient_space(image, [source])


def test_phantom_series(dicom_to_nifti: LoadedOperator, phantom: Phantom, tmp_path: Path) -> None:
    slices = [pydicom.dcmread(p) for p in sorted(phantom.folder.iterdir())]
    image, sidecar = convert(dicom_to_nifti, phantom.folder, tmp_path / "out")
    first = slices[0]
    assert image.shape == (first.Columns, first.Rows, len(slices))
    zooms = image.header.get_zooms()
    thickness = abs(
        float(slices[0].ImagePositionPatient[2]) - float(slices[1].ImagePositionPatient[2])
    )
    assert zooms == pytest.approx((*map(float, first.PixelSpacing), thickness), rel=1e-4)
    assert nib.aff2axcodes(image.affine) == ("L", "A", "S")
    assert sidecar["SeriesNumber"] == first.SeriesNumber
    assert_same_voxels_in_patient_space(image, slices)


def test_uncompressed_output(
    dicom_to_nifti: LoadedOperator, phantom: Phantom, tmp_path: Path
) -> None:
    result = run_operator_locally(
        dicom_to_nifti, phantom.folder, tmp_path / "out", {"compress": "false", "filename": "v"}
    )
    assert sorted(result.files) == [Path("v.json"), Path("v.nii")]


def test_folder_without_dicom_fails(dicom_to_nifti: LoadedOperator, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no images here")
    with pytest.raises(StepFailed, match="dcm2niix"):
        run_operator_locally(dicom_to_nifti, tmp_path / "in", tmp_path / "out", {})
