"""Pseudonyms and UIDs are keyed by the site secret: one new Study Instance UID and Frame of
Reference UID per study, a CT and its SEG de-identified in separate runs still reference each
other (highdicom opens the SEG and finds its source), the same secret gives the same
pseudonyms and another secret other ones; the secret file is created 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from openjip.deid.pseudonyms import site_secret
from openjip.deid.run import deidentify_files
from openjip.phantom.ct import write_ct_series

from .conftest import deidentifier


def ct_study(folder: Path) -> list[Path]:
    first = write_ct_series(folder / "s1", slices=3, rows=32, columns=32, series_number=1)
    second = write_ct_series(folder / "s2", slices=2, rows=32, columns=32, series_number=2)
    return first + second


def seg_of(ct: list[Path], out: Path) -> Path:
    slices = [pydicom.dcmread(path) for path in ct]
    mask = np.zeros((len(slices), 32, 32), dtype=bool)
    mask[:, 8:24, 8:24] = True
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="box",
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=slices,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=90,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="openjip tests",
        manufacturer_model_name="box",
        software_versions="1",
        device_serial_number="1",
    )
    path = out / "seg.dcm"
    seg.save_as(path)
    return path


def read_all(outputs: list[tuple[str, str]]) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(output) for _, output in outputs]


def test_one_new_study_and_frame_of_reference_uid_per_study(tmp_path: Path) -> None:
    sources = ct_study(tmp_path)
    report = deidentify_files(sources, tmp_path / "out", deidentifier())
    results, originals = read_all(report.outputs), [pydicom.dcmread(p) for p in sources]
    assert len(results) == 5 and report.check_passed
    assert len({ds.StudyInstanceUID for ds in results}) == 1
    assert len({ds.FrameOfReferenceUID for ds in results}) == 1
    assert len({ds.SeriesInstanceUID for ds in results}) == 2
    assert results[0].StudyInstanceUID != originals[0].StudyInstanceUID
    assert results[0].FrameOfReferenceUID != originals[0].FrameOfReferenceUID


def test_a_seg_de_identified_apart_still_finds_its_ct(tmp_path: Path) -> None:
    ct = write_ct_series(tmp_path / "ct", slices=3, rows=32, columns=32)
    seg_path = seg_of(ct, tmp_path)
    ct_run = deidentify_files(ct, tmp_path / "ct-out", deidentifier())
    seg_run = deidentify_files([seg_path], tmp_path / "seg-out", deidentifier())
    assert ct_run.check_passed and seg_run.check_passed and not seg_run.failures
    seg = hd.seg.segread(seg_run.outputs[0][1])
    cts = read_all(ct_run.outputs)
    expected = {(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) for ds in cts}
    assert {tuple(uids) for uids in seg.get_source_image_uids()} == expected
    assert seg.StudyInstanceUID == cts[0].StudyInstanceUID
    assert seg.PatientID == cts[0].PatientID


def test_same_secret_same_pseudonyms_other_secret_other(tmp_path: Path) -> None:
    sources = ct_study(tmp_path)[:1]
    runs = {
        name: read_all(
            deidentify_files(sources, tmp_path / name, deidentifier(secret=key)).outputs
        )[0]
        for name, key in (("a", b"site-a"), ("again", b"site-a"), ("b", b"site-b"))
    }
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "SOPInstanceUID"):
        assert runs["a"][keyword].value == runs["again"][keyword].value, keyword
        assert runs["a"][keyword].value != runs["b"][keyword].value, keyword
    assert runs["a"].PatientID != pydicom.dcmread(sources[0]).PatientID


def test_modified_dates_shift_all_studies_of_a_patient_alike(tmp_path: Path) -> None:
    first = write_ct_series(tmp_path / "one", slices=2, rows=32, columns=32)
    second = write_ct_series(tmp_path / "two", slices=2, rows=32, columns=32, seed=1)
    original = [pydicom.dcmread(path) for path in (first[0], second[0])]
    original[1].StudyDate = "20200101"
    original[1].StudyInstanceUID = hd.UID()
    original[1].save_as(second[0])
    run = deidentify_files(
        [first[0], second[0]], tmp_path / "out", deidentifier("retain-longitudinal-modified-dates")
    )
    one, two = read_all(run.outputs)
    assert one.LongitudinalTemporalInformationModified == "MODIFIED"
    days = [
        (
            np.datetime64(f"{o.StudyDate[:4]}-{o.StudyDate[4:6]}-{o.StudyDate[6:]}")
            - np.datetime64(f"{r.StudyDate[:4]}-{r.StudyDate[4:6]}-{r.StudyDate[6:]}")
        )
        for o, r in zip(original, (one, two), strict=True)
    ]
    assert days[0] == days[1] and days[0] > np.timedelta64(0, "D")


def test_the_site_secret_is_created_0600_and_kept(tmp_path: Path) -> None:
    first = site_secret(tmp_path / "home")
    assert stat.S_IMODE((tmp_path / "home" / "deid.secret").stat().st_mode) == 0o600
    assert site_secret(tmp_path / "home") == first and len(first) >= 32
