"""The nodule-features operator on phantom CTs with and without a nodule, from a quiet and from a
noisy scanner: the features tell the two apart, the label comes from ImageComments, and input
that is no CT series is refused with a message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydicom
import pytest

from openjip.operators import LoadedOperator, StepFailed, run_operator_locally
from openjip.phantom import write_ct_series


def features_of(operator: LoadedOperator, folder: Path, out: Path) -> dict[str, Any]:
    result = run_operator_locally(operator, folder, out)
    assert result.files == [Path("features.json")]
    document: dict[str, Any] = json.loads(result.paths()[0].read_text())
    return document


@pytest.mark.parametrize("noise_hu", [10.0, 180.0])
def test_a_nodule_makes_a_large_hole_in_the_lungs(
    nodule_features: LoadedOperator, tmp_path: Path, noise_hu: float
) -> None:
    found = {}
    for nodule in (True, False):
        folder = tmp_path / f"ct-{nodule}"
        write_ct_series(folder, slices=24, rows=96, columns=96, patient_id="NF", seed=3,
                        noise_hu=noise_hu, nodule=nodule)  # fmt: skip
        found[nodule] = features_of(nodule_features, folder, tmp_path / f"out-{nodule}")
    with_nodule, without = found[True], found[False]
    assert with_nodule["label"] == 1 and without["label"] == 0
    largest_with = with_nodule["features"]["log_largest_hole"]
    largest_without = without["features"]["log_largest_hole"]
    assert largest_with > 3.0 > largest_without + 1.0
    # The noisier scanner's lung parenchyma is noisier: a feature the model sees per site.
    assert without["features"]["lung_hu_std"] == pytest.approx(noise_hu / 100, rel=0.15)


def test_a_series_without_a_known_label_has_none(
    nodule_features: LoadedOperator, tmp_path: Path
) -> None:
    files = write_ct_series(tmp_path / "ct", slices=12, rows=64, columns=64, patient_id="NL")
    for path in files:
        ds = pydicom.dcmread(path)
        ds.ImageComments = "ask the radiologist"
        ds.save_as(path)
    assert features_of(nodule_features, tmp_path / "ct", tmp_path / "out")["label"] is None


def test_input_that_is_no_ct_series_is_refused(
    nodule_features: LoadedOperator, tmp_path: Path
) -> None:
    files = write_ct_series(tmp_path / "mr", slices=4, rows=32, columns=32, patient_id="MR")
    for path in files:
        ds = pydicom.dcmread(path)
        ds.Modality = "MR"
        ds.save_as(path)
    with pytest.raises(StepFailed, match="not CT"):
        run_operator_locally(nodule_features, tmp_path / "mr", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StepFailed, match="no DICOM image slices"):
        run_operator_locally(nodule_features, tmp_path / "empty", tmp_path / "out2")
