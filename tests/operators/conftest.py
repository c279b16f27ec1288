"""Fixtures of the operator tests: the repository's operators and real CT input folders."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut

from openjip.operators import LoadedOperator, load_operator
from openjip.operators.catalog import REPO_OPERATORS_DIR
from openjip.phantom import write_ct_series

PHANTOM_SLICES = 32
PHANTOM_SIZE = 128


@dataclass(frozen=True)
class Phantom:
    """A noisy CT series to process and its noiseless twin (same UIDs) as ground truth in HU."""

    folder: Path
    series_uid: str
    sop_uids: list[str]
    truth_hu: np.ndarray
    """(slice, row, column) in the order of ``sop_uids`` (top slice first)."""


def _hu(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return np.asarray(apply_modality_lut(ds.pixel_array, ds))


@pytest.fixture(scope="session")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Phantom:
    """A 32-slice chest CT phantom (128²) in ``folder``; files top slice first."""
    root = tmp_path_factory.mktemp("phantom")
    files = write_ct_series(
        root / "ct", slices=PHANTOM_SLICES, rows=PHANTOM_SIZE, columns=PHANTOM_SIZE
    )
    truth = write_ct_series(
        root / "truth",
        slices=PHANTOM_SLICES,
        rows=PHANTOM_SIZE,
        columns=PHANTOM_SIZE,
        noise_hu=0.0,
    )
    first = pydicom.dcmread(files[0])
    return Phantom(
        folder=root / "ct",
        series_uid=str(first.SeriesInstanceUID),
        sop_uids=[str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files],
        truth_hu=np.stack([_hu(f) for f in truth]),
    )


@pytest.fixture
def ct_slice_dir(tmp_path: Path) -> Path:
    """A folder holding pydicom-data's real CT slice 693_UNCI.dcm (512², no frame of reference)."""
    return _folder_with(tmp_path, "693_UNCI.dcm")


@pytest.fixture(params=["693_UNCI.dcm", "693_J2KR.dcm"])
def any_ct_slice_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """pydicom-data's real CT slice, uncompressed and JPEG 2000 lossless."""
    return _folder_with(tmp_path, request.param)


def _folder_with(tmp_path: Path, name: str) -> Path:
    source = get_testdata_file(name)
    assert source, f"{name} is not among pydicom's test files"
    folder = tmp_path / Path(name).stem
    folder.mkdir()
    shutil.copy(source, folder / name)
    return folder


@pytest.fixture
def small_ct_dir(tmp_path: Path) -> Path:
    """A folder holding pydicom's real CT slice CT_small.dcm (128², with a frame of reference)."""
    return _folder_with(tmp_path, "CT_small.dcm")


@pytest.fixture
def mr_dir(tmp_path: Path) -> Path:
    """A folder holding one real MR image (pydicom's MR_small.dcm)."""
    return _folder_with(tmp_path, "MR_small.dcm")


@pytest.fixture(scope="session")
def threshold_segmentation() -> LoadedOperator:
    """The repository's threshold-segmentation operator."""
    return load_operator(REPO_OPERATORS_DIR / "threshold-segmentation")


@pytest.fixture(scope="session")
def dicom_to_nifti() -> LoadedOperator:
    """The repository's dicom-to-nifti operator."""
    return load_operator(REPO_OPERATORS_DIR / "dicom-to-nifti")


@pytest.fixture(scope="session")
def nodule_features() -> LoadedOperator:
    """The repository's nodule-features operator."""
    return load_operator(REPO_OPERATORS_DIR / "nodule-features")
