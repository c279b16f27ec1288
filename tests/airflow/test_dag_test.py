"""Each example workflow run with ``dag.test()`` in a real Airflow on real CT (a pydicom-data
slice) and on a generated CT phantom: the SEG is indexed and linked to its source, the NIfTI has
the series' shape, spacing and orientation."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from airflow.dag_processing.dagbag import DagBag
from pydicom.data import get_testdata_file

from openjip.config import Settings
from openjip.index import Query, open_index
from openjip.phantom import write_ct_series
from openjip.storage import open_store

REAL_CT = Path(get_testdata_file("693_UNCI.dcm"))
"""A real CT slice of pydicom-data (it has no FrameOfReferenceUID, so no SEG can reference it)."""
REAL_CT_WITH_FRAME = Path(get_testdata_file("CT_small.dcm"))
"""A real CT slice shipped with pydicom, with the frame of reference a SEG needs."""


def _hounsfield(paths: list[Path]) -> np.ndarray:
    slices = [pydicom.dcmread(path) for path in paths]
    return np.stack(
        [s.pixel_array * float(s.RescaleSlope) + float(s.RescaleIntercept) for s in slices]
    )


def test_ct_body_mask_on_real_ct_and_phantom(
    dagbag: DagBag,
    settings: Settings,
    ingest: Callable[[list[Path]], list[str]],
    ct_phantom: list[Path],
) -> None:
    [phantom_uid] = ingest(ct_phantom)
    [real_uid] = ingest([REAL_CT_WITH_FRAME])

    run = dagbag.dags["ct-body-mask"].test(run_conf={"series": [phantom_uid, real_uid]})

    assert run.state == "success"
    index, store = open_index(settings), open_store(settings)
    for source_uid, source_files in ((phantom_uid, ct_phantom), (real_uid, [REAL_CT_WITH_FRAME])):
        [seg_series] = [s for s in index.find_series(Query()) if s.derived_from == source_uid]
        assert seg_series.Modality == "SEG"
        [instance] = index.find_instances(Query(SeriesInstanceUID=[seg_series.SeriesInstanceUID]))
        seg = hd.seg.segread(io.BytesIO(store.get(instance.object_key)))
        referenced = {ref.SeriesInstanceUID for ref in seg.ReferencedSeriesSequence}
        assert referenced == {source_uid}
        mask_voxels = int(np.count_nonzero(seg.pixel_array))
        body_voxels = int(np.count_nonzero(_hounsfield(source_files) > -500))
        # The SEG holds the body: about the voxels above -500 HU, holes (lungs) filled.
        assert 0.9 * body_voxels <= mask_voxels <= 1.35 * body_voxels, (mask_voxels, body_voxels)
    index.close()


def test_ct_lung_mask_by_query_runs_on_what_the_query_finds(
    dagbag: DagBag,
    settings: Settings,
    ingest: Callable[[list[Path]], list[str]],
    tmp_path: Path,
) -> None:
    def phantom(patient_id: str) -> list[Path]:
        return write_ct_series(
            tmp_path / patient_id, slices=12, rows=64, columns=64, patient_id=patient_id
        )

    [first] = ingest(phantom("LUNG-1"))
    [second] = ingest(phantom("LUNG-2"))
    ingest([REAL_CT_WITH_FRAME])  # another patient, scanned in 2004, no "chest" anywhere
    since = f"{int(pydicom.dcmread(REAL_CT_WITH_FRAME).StudyDate[:4]) + 1}0101-"
    dag = dagbag.dags["ct-lung-mask-by-query"]
    index = open_index(settings)

    def sources() -> list[str]:
        return sorted(s.derived_from for s in index.find_series(Query(Modality="SEG")))

    # The dates leave the 2004 CT out; empty fields match anything.
    run = dag.test(run_conf={"patient_id": "*", "study_dates": since, "description": ""})
    assert run.state == "success"
    assert sources() == sorted([first, second])
    # The patient and the description words narrow it to one series.
    run = dag.test(run_conf={"patient_id": "LUNG-2", "study_dates": "", "description": "chest"})
    assert run.state == "success"
    assert sources() == sorted([first, second, second])
    index.close()


def test_convert_to_nifti_on_phantom_and_real_ct(
    dagbag: DagBag,
    settings: Settings,
    ingest: Callable[[list[Path]], list[str]],
    ct_phantom: list[Path],
) -> None:
    [phantom_uid] = ingest(ct_phantom)
    [real_uid] = ingest([REAL_CT])

    run = dagbag.dags["convert-to-nifti"].test(run_conf={"series": [phantom_uid, real_uid]})

    assert run.state == "success"
    store = open_store(settings)
    for uid, files in ((phantom_uid, ct_phantom), (real_uid, [REAL_CT])):
        keys = [info.key for info in store.list("runs/convert-to-nifti/")]
        [nifti_key] = [key for key in keys if f"/convert/{uid}/" in key and key.endswith(".nii.gz")]
        image = nib.Nifti1Image.from_bytes(gzip.decompress(store.get(nifti_key)))
        first = pydicom.dcmread(files[0])
        assert image.shape[:2] == (first.Columns, first.Rows)
        assert (image.shape[2:] or (1,))[0] == len(files)
        assert np.allclose(image.header.get_zooms()[:2], [float(v) for v in first.PixelSpacing])
        _assert_same_voxels_in_space(image, files)


def _assert_same_voxels_in_space(image: nib.Nifti1Image, files: list[Path]) -> None:
    """Voxels of the NIfTI hold the HU of the DICOM pixel at the same patient position: shape,
    spacing, axis order and flips all right."""
    slices = [pydicom.dcmread(path) for path in files]
    orientation = np.array([float(v) for v in slices[0].ImageOrientationPatient])
    along_row, along_column = orientation[:3], orientation[3:]
    normal = np.cross(along_row, along_column)
    row_spacing, column_spacing = (float(v) for v in slices[0].PixelSpacing)
    data = image.get_fdata().reshape((*image.shape[:2], -1))
    hounsfield = _hounsfield(files)
    rng = np.random.default_rng(0)
    for _ in range(50):
        i, j, k = (int(rng.integers(0, size)) for size in data.shape)
        ras = image.affine @ np.array([i, j, k, 1.0])
        lps = np.array([-ras[0], -ras[1], ras[2]])
        offsets = [lps - np.array([float(v) for v in s.ImagePositionPatient]) for s in slices]
        index = int(np.argmin([abs(offset @ normal) for offset in offsets]))
        column = offsets[index] @ along_row / column_spacing
        row = offsets[index] @ along_column / row_spacing
        assert abs(offsets[index] @ normal) < 0.01
        assert np.allclose([row, column], np.round([row, column]), atol=0.01)
        assert data[i, j, k] == pytest.approx(hounsfield[index, round(row), round(column)], abs=1)
