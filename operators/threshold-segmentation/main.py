"""threshold-segmentation: a body or lung mask of a CT series by HU thresholds, as a DICOM SEG.

Body: voxels above ``body_threshold_hu``, largest 3-D connected component, holes filled slice by
slice. Lungs: voxels below ``lung_threshold_hu`` inside the filled body, the largest
``lung_components`` regions, holes (vessels, nodules) filled. The SEG (highdicom) references every
source slice, so it shares the series' frame of reference and geometry.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import numpy.typing as npt
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut
from pydicom.sr.codedict import codes

from openjip import sdk

Mask = npt.NDArray[np.bool_]
# A second lung smaller than this fraction of the first is gas in the bowel, not a lung.
MIN_LUNG_FRACTION = 0.1


@dataclass(frozen=True)
class Target:
    """A structure this operator segments, with its coded concepts (SNOMED CT)."""

    label: str
    property_type: hd.sr.CodedConcept


TARGETS = {
    "body": Target("Body", hd.sr.CodedConcept.from_code(codes.SCT.EntireBody)),
    "lungs": Target("Lungs", hd.sr.CodedConcept.from_code(codes.SCT.Lung)),
}


def read_series(files: list[Path]) -> dict[str, list[Dataset]]:
    """The image slices among ``files`` by SeriesInstanceUID, each sorted along its normal."""
    groups: dict[str, list[Dataset]] = defaultdict(list)
    for path in files:
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:
            sdk.log.warning("skipping %s: not a DICOM file", path.name)
            continue
        if "PixelData" not in ds or "ImagePositionPatient" not in ds:
            sdk.log.warning("skipping %s: not an image slice", path.name)
            continue
        groups[str(ds.SeriesInstanceUID)].append(ds)
    for uid, slices in groups.items():
        check_geometry(uid, slices)
        normal = np.cross(*np.reshape(np.asarray(slices[0].ImageOrientationPatient, float), (2, 3)))
        slices.sort(
            key=lambda ds: float(np.dot(normal, np.asarray(ds.ImagePositionPatient, float)))
        )
    return groups


def check_geometry(uid: str, slices: list[Dataset]) -> None:
    """Fail unless the slices are CT images of one size and orientation (a volume)."""
    first = slices[0]
    if first.get("Modality") != "CT":
        sdk.fail(
            f"series {uid} is {first.get('Modality', 'of unknown modality')}, not CT: "
            "HU thresholds need CT"
        )
    if "FrameOfReferenceUID" not in first:
        sdk.fail(f"series {uid} has no FrameOfReferenceUID: a SEG cannot be placed on it")
    for ds in slices[1:]:
        if (ds.Rows, ds.Columns) != (first.Rows, first.Columns) or not np.allclose(
            np.asarray(ds.ImageOrientationPatient, float),
            np.asarray(first.ImageOrientationPatient, float),
            atol=1e-4,
        ):
            sdk.fail(f"series {uid}: slices differ in size or orientation, not one volume")


def hounsfield(slices: list[Dataset]) -> npt.NDArray[np.float32]:
    """The volume (slice, row, column) in HU."""
    return np.stack([apply_modality_lut(ds.pixel_array, ds) for ds in slices]).astype(np.float32)


def largest_components(mask: Mask, count: int) -> Mask:
    """The ``count`` largest 3-D connected components of ``mask``."""
    labels = sitk.RelabelComponent(
        sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8))),
        sortByObjectSize=True,
    )
    array = sitk.GetArrayFromImage(labels)
    return (array >= 1) & (array <= count)


def fill_holes_per_slice(mask: Mask) -> Mask:
    """Each axial slice with its enclosed holes filled."""
    filled = np.empty_like(mask)
    for index, plane in enumerate(mask):
        image = sitk.BinaryFillhole(sitk.GetImageFromArray(plane.astype(np.uint8)))
        filled[index] = sitk.GetArrayViewFromImage(image).astype(bool)
    return filled


def segment(hu: npt.NDArray[np.float32], params: dict[str, object]) -> Mask:
    """The mask of ``params['target']`` in the HU volume."""
    body = largest_components(hu > float(params["body_threshold_hu"]), 1)
    fill = bool(params["fill_holes"])
    if params["target"] == "body":
        return fill_holes_per_slice(body) if fill else body
    inside = fill_holes_per_slice(body) & (hu < float(params["lung_threshold_hu"]))
    lungs = largest_components(inside, int(params["lung_components"]))
    lungs = drop_small_components(lungs)
    return fill_holes_per_slice(lungs) if fill else lungs


def drop_small_components(mask: Mask) -> Mask:
    """``mask`` without components smaller than MIN_LUNG_FRACTION of its largest."""
    labels = sitk.GetArrayFromImage(
        sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)))
    )
    sizes = np.bincount(labels.ravel())[1:]
    if sizes.size == 0:
        return mask
    keep = np.flatnonzero(sizes >= MIN_LUNG_FRACTION * sizes.max()) + 1
    return np.isin(labels, keep)


def segmentation(slices: list[Dataset], mask: Mask, target: Target) -> hd.seg.Segmentation:
    """The DICOM SEG of ``mask`` over ``slices`` (same order), one binary segment."""
    identity = sdk.operator()
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=target.label,
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=target.property_type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=f"openjip {identity.name}",
            family=codes.cid7162.MorphologicalOperations,
            version=identity.version,
        ),
    )
    source_number = slices[0].get("SeriesNumber")
    return hd.seg.Segmentation(
        source_images=slices,
        pixel_array=mask.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=int(source_number) + 1000 if source_number is not None else 1000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="openjip",
        manufacturer_model_name=identity.name,
        software_versions=identity.version,
        device_serial_number="none",
        content_label=target.label.upper(),
        content_description=f"{target.label} mask by HU threshold",
        series_description=f"{target.label} mask (threshold)",
    )


def process(
    uid: str, slices: list[Dataset], out: Path, name: str, report: Callable[[float, str], None]
) -> None:
    """Segment one series and write its SEG to ``out / name``."""
    params = sdk.params()
    target = TARGETS[str(params["target"])]
    hu = hounsfield(slices)
    report(0.3, f"{uid}: {len(slices)} slices read")
    mask = segment(hu, params)
    voxels = int(mask.sum())
    if voxels == 0:
        sdk.fail(f"series {uid}: no {target.label.lower()} found with the given thresholds")
    report(0.7, f"{uid}: {target.label.lower()} has {voxels} voxels")
    segmentation(slices, mask, target).save_as(out / name)
    sdk.log.info("wrote %s (%s of series %s)", name, target.label.lower(), uid)


def main() -> None:
    """Segment every series of every input."""
    inputs = sdk.inputs()
    target = str(sdk.params()["target"])
    for position, item in enumerate(inputs):
        series = read_series(item.files())
        if not series:
            sdk.fail(f"no DICOM image slices in {item.name}")
        for number, (uid, slices) in enumerate(sorted(series.items()), start=1):
            done = (position + (number - 1) / len(series)) / len(inputs)
            share = 1.0 / (len(inputs) * len(series))

            def report(
                fraction: float, message: str, done: float = done, share: float = share
            ) -> None:
                sdk.progress(done + fraction * share, message)

            name = f"seg-{target}.dcm" if len(series) == 1 else f"seg-{target}-{number}.dcm"
            process(uid, slices, item.output_dir(), name, report)
    sdk.progress(1.0, "done")


if __name__ == "__main__":
    sdk.run(main)
