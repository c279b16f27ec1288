"""Writing the chest phantom as DICOM: CT Image Storage series, explicit VR little endian.

UIDs are derived from the arguments (patient, seed, series number), so the same call writes the
same instances again: a cached benchmark set stays valid and re-sending it is idempotent. Use
another seed or patient ID for new data.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

from openjip import __version__
from openjip.phantom.anatomy import ChestAnatomy, SliceGrid, hu_slice

RESCALE_INTERCEPT = -1024
"""Stored value = HU - RESCALE_INTERCEPT, so air (-1000 HU) is stored as 24."""
DEFAULT_COVERAGE_MM = 300.0
"""z range of a series when no slice thickness is given: chest and upper abdomen."""
FIELD_OF_VIEW_MM = 400.0

Progress = Callable[[Path], None]


def write_ct_series(
    out_dir: Path | str,
    *,
    slices: int = 100,
    rows: int = 512,
    columns: int = 512,
    patient_id: str = "PHANTOM",
    patient_name: str | None = None,
    seed: int = 0,
    series_number: int = 1,
    slice_thickness: float | None = None,
    noise_hu: float = 12.0,
    nodule: bool = True,
    manufacturer: str = "openjip",
    progress: Progress | None = None,
) -> list[Path]:
    """Write one axial chest CT series into ``out_dir``; return the files, top slice first.

    The anatomy (body size, lesion position) depends on ``patient_id`` and ``seed``, the noise
    also on ``series_number``: series with the same patient and seed but different numbers are
    two series of one study. ``slice_thickness`` defaults to 300 mm / ``slices``.
    ``nodule=False`` leaves the nodule out; ``ImageComments`` says which (``nodule`` or
    ``no nodule``: the label a federated-learning example learns). ``manufacturer`` names the
    scanner. ``progress`` is called with each file written.
    """
    if slices < 1 or rows < 16 or columns < 16:
        raise ValueError("a phantom needs at least 1 slice of 16 x 16 pixels")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    thickness, positions = _slice_positions(slices, slice_thickness)
    anatomy = ct_anatomy(
        slices=slices, patient_id=patient_id, seed=seed, slice_thickness=slice_thickness
    )
    if not nodule:
        anatomy = dataclasses.replace(
            anatomy, lesion=dataclasses.replace(anatomy.lesion, radius=0.0)
        )
    noise_rng = _rng(patient_id, seed, series_number)
    spacing = FIELD_OF_VIEW_MM / max(rows, columns)
    grid = SliceGrid(rows, columns, spacing)

    study_uid = _uid(patient_id, seed, "study")
    series_uid = _uid(study_uid, series_number, "series")
    ds = _series_dataset(
        patient_id=patient_id,
        patient_name=patient_name or f"Phantom^{patient_id}",
        seed=seed,
        study_uid=study_uid,
        series_uid=series_uid,
        series_number=series_number,
        grid=grid,
        thickness=thickness,
    )
    ds.Manufacturer = manufacturer
    ds.ImageComments = "nodule" if nodule else "no nodule"
    noise = np.empty((rows, columns), dtype=np.float32)
    paths: list[Path] = []
    for index, z in enumerate(positions):
        hu = hu_slice(anatomy, grid, float(z))
        noise_rng.standard_normal(dtype=np.float32, out=noise)
        noise *= noise_hu
        noise += hu
        noise -= RESCALE_INTERCEPT
        np.rint(noise, out=noise)
        stored = noise.astype("<i2")

        sop_uid = _uid(series_uid, index, "instance")
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = index + 1
        ds.ImagePositionPatient = [f"{grid.x0:.4f}", f"{grid.y0:.4f}", f"{z:.4f}"]
        ds.SliceLocation = f"{z:.4f}"
        ds.PixelData = stored.tobytes()
        path = out / f"CT{index + 1:05d}.dcm"
        dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
        if progress is not None:
            progress(path)
    return paths


def ct_anatomy(
    *,
    slices: int = 100,
    patient_id: str = "PHANTOM",
    seed: int = 0,
    slice_thickness: float | None = None,
) -> ChestAnatomy:
    """The anatomy ``write_ct_series`` draws for these arguments: ground truth for tests.

    ``ct_anatomy(...).lesion`` tells where the nodule is (patient coordinates, mm).
    """
    _thickness, positions = _slice_positions(slices, slice_thickness)
    return ChestAnatomy.random(_rng(patient_id, seed), slice_positions=positions)


def _slice_positions(
    slices: int, slice_thickness: float | None
) -> tuple[float, npt.NDArray[np.float64]]:
    """Slice spacing and the z of each slice, top first, centred on z = 0."""
    thickness = slice_thickness or DEFAULT_COVERAGE_MM / slices
    z_top = (slices - 1) * thickness / 2.0
    return thickness, z_top - np.arange(slices, dtype=np.float64) * thickness


def write_ct_studies(
    out_dir: Path | str,
    *,
    series: int = 1,
    series_per_study: int = 1,
    slices: int = 100,
    rows: int = 512,
    columns: int = 512,
    patient_prefix: str = "PHANTOM",
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Path]:
    """Write ``series`` series, grouped into studies of ``series_per_study``, one patient each.

    Files go to ``out_dir/<PatientID>/<series number>/``. Patient IDs are
    ``<patient_prefix>-0001``, ``-0002``, ...; study ``i`` (from 0) uses seed ``seed + i``.
    """
    if series_per_study < 1:
        raise ValueError("series_per_study must be at least 1")
    paths: list[Path] = []
    for number in range(series):
        study, series_number = divmod(number, series_per_study)
        patient_id = f"{patient_prefix}-{study + 1:04d}"
        paths += write_ct_series(
            Path(out_dir) / patient_id / f"{series_number + 1:03d}",
            slices=slices,
            rows=rows,
            columns=columns,
            patient_id=patient_id,
            seed=seed + study,
            series_number=series_number + 1,
            progress=progress,
        )
    return paths


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded by the arguments, stable across runs and machines."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest))


def _uid(*parts: object) -> UID:
    """A UID (pydicom's root) that is a pure function of the arguments."""
    return generate_uid(entropy_srcs=[repr(part) for part in parts])


def _series_dataset(
    *,
    patient_id: str,
    patient_name: str,
    seed: int,
    study_uid: str,
    series_uid: str,
    series_number: int,
    grid: SliceGrid,
    thickness: float,
) -> Dataset:
    """Everything of a slice but its instance UID, number, position and pixels."""
    study_day = datetime.date(2024, 1, 1) + datetime.timedelta(days=seed % 3650)
    date = study_day.strftime("%Y%m%d")

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"OPENJIP_{__version__}"[:16]

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = "090000"
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = f"09{series_number % 60:02d}00"
    ds.AccessionNumber = "PH" + _uid(patient_id, seed, "accession")[-8:]
    ds.Modality = "CT"
    ds.Manufacturer = "openjip"
    ds.InstitutionName = "openjip phantom"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Phantom chest CT"
    ds.SeriesDescription = f"Phantom chest {series_number}"
    ds.ManufacturerModelName = "chest phantom"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = f"{thickness:.4f}"
    ds.KVP = "120"
    ds.ReconstructionDiameter = f"{grid.spacing * max(grid.rows, grid.columns):.4f}"
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = _uid(study_uid, "frame of reference")
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = grid.rows
    ds.Columns = grid.columns
    ds.PixelSpacing = [f"{grid.spacing:.6f}", f"{grid.spacing:.6f}"]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = str(RESCALE_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    return ds
