"""nodule-features: features of the soft tissue the lungs enclose (nodules), for a classifier.

The body is every voxel above -500 HU with its holes filled slice by slice; the lungs are the
voxels inside it below ``lung_threshold_hu``; their holes, filled slice by slice, are the soft
tissue inside the lungs. The features describe those holes and the lung parenchyma; the label
comes from the series' ``ImageComments`` (the site's own annotation). Written to
``features.json``; nothing of the header but the label is copied.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut

from openjip import sdk

BODY_HU = -500
Mask = npt.NDArray[np.bool_]


def read_slices(files: list[Path]) -> list[Dataset]:
    """The CT image slices among ``files``, sorted along z; fails unless they are one series."""
    slices = []
    for path in files:
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:
            continue
        if "PixelData" in ds and "ImagePositionPatient" in ds:
            slices.append(ds)
    if not slices:
        sdk.fail("no DICOM image slices in the input")
    if len({str(ds.SeriesInstanceUID) for ds in slices}) != 1:
        sdk.fail("the input holds more than one series; run this operator per series")
    if slices[0].get("Modality") != "CT":
        sdk.fail("the series is not CT: HU thresholds need CT")
    return sorted(slices, key=lambda ds: float(ds.ImagePositionPatient[2]))


def _fill_per_slice(mask: Mask) -> Mask:
    filled = np.empty_like(mask)
    for number, plane in enumerate(mask):
        image = sitk.GetImageFromArray(plane.astype(np.uint8))
        filled[number] = sitk.GetArrayFromImage(sitk.BinaryFillhole(image)).astype(bool)
    return filled


def _components(mask: Mask) -> Iterator[int]:
    """Voxel counts of the 3-D connected components of ``mask``."""
    labels = sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)))
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(labels)
    for label in statistics.GetLabels():
        yield int(statistics.GetNumberOfPixels(label))


def features(hu: npt.NDArray[np.float32], voxel_mm3: float, lung_hu: float) -> dict[str, float]:
    """The named features of one volume (slice, row, column) in HU."""
    body = _fill_per_slice(hu > BODY_HU)
    lungs = body & (hu < lung_hu)
    holes = _fill_per_slice(lungs) & ~lungs
    hole_voxels = int(holes.sum())
    largest = max(_components(holes), default=0)
    parenchyma = hu[lungs]
    return {
        "log_hole_volume": math.log1p(hole_voxels * voxel_mm3 / 100.0),
        "log_largest_hole": math.log1p(largest * voxel_mm3 / 100.0),
        "hole_fraction_pct": 100.0 * hole_voxels / max(int(lungs.sum()) + hole_voxels, 1),
        "lung_hu_mean": (float(parenchyma.mean()) + 850.0) / 100.0 if parenchyma.size else 0.0,
        "lung_hu_std": float(parenchyma.std()) / 100.0 if parenchyma.size else 0.0,
    }


def label_of(first: Dataset, positive: str, negative: str) -> int | None:
    """1, 0 or ``None`` from the series' ImageComments."""
    comment = str(first.get("ImageComments", "")).strip().lower()
    if comment == positive.strip().lower():
        return 1
    if comment == negative.strip().lower():
        return 0
    return None


def main() -> None:
    """Write ``features.json`` for the one input series."""
    params = sdk.params()
    slices = read_slices([path for item in sdk.inputs() for path in item.files()])
    hu = np.stack([apply_modality_lut(ds.pixel_array, ds) for ds in slices]).astype(np.float32)
    first = slices[0]
    row_mm, column_mm = (float(value) for value in first.PixelSpacing)
    if len(slices) > 1:
        thickness = abs(
            float(slices[1].ImagePositionPatient[2]) - float(slices[0].ImagePositionPatient[2])
        )
    else:
        thickness = float(first.get("SliceThickness", 1.0) or 1.0)
    sdk.progress(0.3, "volume read")
    result = {
        "features": features(
            hu, row_mm * column_mm * thickness, float(params["lung_threshold_hu"])
        ),
        "label": label_of(first, str(params["positive"]), str(params["negative"])),
    }
    (sdk.output_dir() / "features.json").write_text(json.dumps(result, indent=2) + "\n")
    sdk.progress(1.0, "done")


if __name__ == "__main__":
    sdk.run(main)
