"""threshold-segmentation on real DICOM: SEG validity, references, and overlap with the phantom."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from openjip.operators import LoadedOperator, StepFailed, run_operator_locally

if TYPE_CHECKING:
    from conftest import Phantom  # tests/operators/conftest.py, only for the annotations

AIR_HU = -1000
LUNG_HU = -850


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def segment(operator: LoadedOperator, source: Path, out: Path, target: str) -> hd.seg.Segmentation:
    result = run_operator_locally(operator, source, out, {"target": target})
    assert result.files == [Path(f"seg-{target}.dcm")]
    return hd.seg.segread(result.paths()[0])


@pytest.mark.parametrize(
    ("target", "property_type"), [("body", codes.SCT.EntireBody), ("lungs", codes.SCT.Lung)]
)
def test_phantom_mask_overlaps_the_truth(
    threshold_segmentation: LoadedOperator,
    phantom: Phantom,
    tmp_path: Path,
    target: str,
    property_type: pydicom.sr.coding.Code,
) -> None:
    seg = segment(threshold_segmentation, phantom.folder, tmp_path / "out", target)

    # The SEG belongs to the source study and series and references every slice it covers.
    assert seg.StudyInstanceUID == pydicom.dcmread(next(phantom.folder.iterdir())).StudyInstanceUID
    assert [s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence] == [phantom.series_uid]
    referenced = {sop for _, series, sop in seg.get_source_image_uids() if series}
    assert {series for _, series, _ in seg.get_source_image_uids()} == {phantom.series_uid}
    assert referenced <= set(phantom.sop_uids)
    assert seg.SegmentationType == "BINARY"

    segment_item = seg.get_segment_description(1)
    assert segment_item.segmented_property_category == codes.SCT.AnatomicalStructure
    assert segment_item.segmented_property_type == property_type
    assert segment_item.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    assert segment_item.algorithm_identification[0].AlgorithmVersion == "0.1.0"

    mask = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=phantom.sop_uids,
        segment_numbers=[1],
        assert_missing_frames_are_empty=True,
    )[..., 0].astype(bool)
    truth = phantom.truth_hu != AIR_HU if target == "body" else phantom.truth_hu == LUNG_HU
    assert mask.shape == truth.shape
    assert dice(mask, truth) > 0.9

    # dicom3tools' validator checks the SEG against the IOD: no errors, no warnings.
    checked = subprocess.run(
        ["/usr/bin/dciodvfy", str(tmp_path / "out" / f"seg-{target}.dcm")],
        capture_output=True,
        text=True,
        check=False,
    )
    report = checked.stdout + checked.stderr
    assert "Error" not in report and "Warning" not in report, report


def test_real_ct_slice_gets_a_body_mask(
    threshold_segmentation: LoadedOperator, small_ct_dir: Path, tmp_path: Path
) -> None:
    source = pydicom.dcmread(next(small_ct_dir.iterdir()))
    seg = segment(threshold_segmentation, small_ct_dir, tmp_path / "out", "body")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    mask = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])
    assert mask.shape == (1, source.Rows, source.Columns, 1)
    # The slice shows a cross-section of a body with air around it.
    assert 0.1 < mask.mean() < 0.95


def test_series_per_subfolder_get_one_seg_each(
    threshold_segmentation: LoadedOperator, phantom: Phantom, small_ct_dir: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    for name, folder in (("phantom", phantom.folder), ("slice", small_ct_dir)):
        (inputs / name).mkdir(parents=True)
        for path in folder.iterdir():
            (inputs / name / path.name).symlink_to(path)
    result = run_operator_locally(threshold_segmentation, inputs, tmp_path / "out", {})
    assert result.files == [Path("phantom/seg-body.dcm"), Path("slice/seg-body.dcm")]


def test_non_ct_input_fails_with_a_clear_message(
    threshold_segmentation: LoadedOperator, mr_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(StepFailed, match="is MR, not CT"):
        run_operator_locally(threshold_segmentation, mr_dir, tmp_path / "out", {})


def test_ct_without_frame_of_reference_fails_with_a_clear_message(
    threshold_segmentation: LoadedOperator, ct_slice_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(StepFailed, match="has no FrameOfReferenceUID"):
        run_operator_locally(threshold_segmentation, ct_slice_dir, tmp_path / "out", {})


def test_folder_without_dicom_fails(threshold_segmentation: LoadedOperator, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no images here")
    with pytest.raises(StepFailed, match="no DICOM image slices"):
        run_operator_locally(threshold_segmentation, tmp_path / "in", tmp_path / "out", {})
