"""The durable ingest path and the index rebuild, on a real local store and SQLite index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from openjip.index import Query
from openjip.index.sqlite import SQLiteIndex
from openjip.ingest import Ingestor, InstanceConflict, InvalidInstance, rebuild_index
from openjip.storage.local import LocalObjectStore

CT = Path(get_testdata_file("CT_small.dcm"))
MR = Path(get_testdata_file("MR_small.dcm"))


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[LocalObjectStore, SQLiteIndex, Ingestor]]:
    store = LocalObjectStore(tmp_path / "objects")
    index = SQLiteIndex(tmp_path / "index.sqlite3")
    yield store, index, Ingestor(store, index)
    index.close()


def test_ingest_file_stores_bytes_as_given_and_indexes(
    site: tuple[LocalObjectStore, SQLiteIndex, Ingestor],
) -> None:
    store, index, ingestor = site
    result = ingestor.ingest_file(CT, source_ae="SCANNER")
    assert result.new
    record = result.record
    assert store.get(record.object_key) == CT.read_bytes()
    assert record.object_key == (
        f"dicom/{record.StudyInstanceUID}/{record.SeriesInstanceUID}/{record.SOPInstanceUID}.dcm"
    )
    stored = index.get_instance(record.SOPInstanceUID)
    assert stored is not None
    assert stored.source_ae == "SCANNER"
    assert stored.PatientName == "CompressedSamples^CT1"
    assert stored.header["00100010"]["Value"] == [{"Alphabetic": "CompressedSamples^CT1"}]


def test_reingest_is_idempotent(site: tuple[LocalObjectStore, SQLiteIndex, Ingestor]) -> None:
    store, index, ingestor = site
    first = ingestor.ingest_bytes(CT.read_bytes(), source_ae="A")
    again = ingestor.ingest_bytes(CT.read_bytes(), source_ae="A")
    assert first.new and not again.new
    assert len(list(store.list("dicom/"))) == 1
    assert len(index.find_instances(Query())) == 1


def test_move_consumes_the_file(
    site: tuple[LocalObjectStore, SQLiteIndex, Ingestor], tmp_path: Path
) -> None:
    store, _, ingestor = site
    incoming = tmp_path / "incoming.dcm"
    incoming.write_bytes(MR.read_bytes())
    record = ingestor.ingest_file(incoming, source_ae="A", move=True).record
    assert not incoming.exists()
    assert store.get(record.object_key) == MR.read_bytes()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not dicom at all" * 20, "Part-10"),
        (CT.read_bytes()[:-300], "truncated"),
        (Path(get_testdata_file("no_meta.dcm")).read_bytes(), "Part-10"),
    ],
    ids=["garbage", "truncated", "no-file-meta"],
)
def test_invalid_data_leaves_no_trace(
    site: tuple[LocalObjectStore, SQLiteIndex, Ingestor], data: bytes, reason: str
) -> None:
    store, index, ingestor = site
    with pytest.raises(InvalidInstance, match=reason):
        ingestor.ingest_bytes(data, source_ae="A")
    assert list(store.list("")) == []
    assert index.find_instances(Query()) == []


def test_missing_uid_is_invalid(site: tuple[LocalObjectStore, SQLiteIndex, Ingestor]) -> None:
    import io

    from pydicom import dcmread

    ds = dcmread(CT)
    del ds.SeriesInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(InvalidInstance, match="SeriesInstanceUID missing"):
        site[2].ingest_bytes(buffer.getvalue(), source_ae="A")


def test_rebuild_recreates_the_index_and_reports_unreadable_objects(
    site: tuple[LocalObjectStore, SQLiteIndex, Ingestor],
) -> None:
    store, index, ingestor = site
    ct = ingestor.ingest_file(CT, source_ae="A").record
    mr = ingestor.ingest_file(MR, source_ae="A").record
    store.put("dicom/1.2/3.4/5.6.dcm", b"garbage")
    index.clear()
    seen: list[tuple[int, int]] = []
    report = rebuild_index(store, index, progress=lambda done, total: seen.append((done, total)))
    assert report.scanned == 3 and report.indexed == 2
    assert [key for key, _ in report.skipped] == ["dicom/1.2/3.4/5.6.dcm"]
    assert seen[-1] == (3, 3)
    rebuilt = index.get_instance(ct.SOPInstanceUID)
    assert rebuilt is not None and rebuilt.header == ct.header
    assert index.get_instance(mr.SOPInstanceUID) is not None
    assert store.head("dicom/1.2/3.4/5.6.dcm") is not None  # reported, never deleted


def test_rebuild_skips_an_object_the_index_refuses_and_indexes_the_rest(
    site: tuple[LocalObjectStore, SQLiteIndex, Ingestor],
) -> None:
    """A stored series that claims a second study contradicts the index: reported, not fatal."""
    import io

    from pydicom import dcmread

    store, index, ingestor = site
    ct = ingestor.ingest_file(CT, source_ae="A").record
    ingestor.ingest_file(MR, source_ae="A")
    other = dcmread(CT)
    other.StudyInstanceUID = "1.2.826.0.1.3680043.9.9999.1"
    other.SOPInstanceUID = "1.2.826.0.1.3680043.9.9999.2"
    buffer = io.BytesIO()
    other.save_as(buffer)
    contradicting = (
        f"dicom/{other.StudyInstanceUID}/{ct.SeriesInstanceUID}/{other.SOPInstanceUID}.dcm"
    )
    store.put(contradicting, buffer.getvalue())

    report = rebuild_index(store, index)

    # Objects are indexed in key order: the first claim on the series wins, the other is refused.
    assert report.scanned == 3 and report.indexed == 2
    ((skipped, reason),) = report.skipped
    assert skipped in (contradicting, ct.object_key) and reason
    assert len(index.find_instances(Query(SeriesInstanceUID=[ct.SeriesInstanceUID]))) == 1


def test_a_series_claiming_a_second_study_is_invalid_and_leaves_no_object(
    site: tuple[LocalObjectStore, SQLiteIndex, Ingestor],
) -> None:
    import io

    from pydicom import dcmread

    store, index, ingestor = site
    ct = ingestor.ingest_file(CT, source_ae="A").record
    other = dcmread(CT)
    other.StudyInstanceUID = "1.2.826.0.1.3680043.9.9999.1"
    other.SOPInstanceUID = "1.2.826.0.1.3680043.9.9999.3"
    buffer = io.BytesIO()
    other.save_as(buffer)

    with pytest.raises(InvalidInstance, match=ct.SeriesInstanceUID):
        ingestor.ingest_bytes(buffer.getvalue(), source_ae="A")

    assert [info.key for info in store.list("dicom/")] == [ct.object_key]
    assert index.get_instance(other.SOPInstanceUID) is None


def _derived_from(source: Path) -> bytes:
    """A new instance in a new series made from ``source`` (as a step's DICOM result)."""
    import io

    from pydicom import dcmread
    from pydicom.uid import generate_uid

    ds = dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def test_rebuild_restores_run_outputs_from_their_keys(
    site: tuple[LocalObjectStore, SQLiteIndex, Ingestor], tmp_path: Path
) -> None:
    """Outputs published by the real step runner come back from the ``runs/`` keys alone;
    DICOM results there are not run outputs; keys off the layout are reported, never deleted."""
    from dataclasses import replace

    from openjip.runner.base import StepRequest
    from openjip.runner.local import LocalStepRunner

    store, index, ingestor = site
    ct = ingestor.ingest_file(CT, source_ae="A").record
    mr = ingestor.ingest_file(MR, source_ae="A").record
    runner = LocalStepRunner(store, index, tmp_path / "work")
    run_id = "manual__2026-01-01T00:00:00+00:00"
    per_series = StepRequest("seg", run_id, "mask", "seg@1", [ct.SeriesInstanceUID])
    over_all = StepRequest(
        "seg", run_id, "report", "rep@1", [ct.SeriesInstanceUID, mr.SeriesInstanceUID]
    )
    for request, files in [
        (per_series, {"mask.nii.gz": b"\x1f\x8b nifti", "stats/volumes.json": b"{}"}),
        (over_all, {"summary.csv": b"series,volume\n"}),
    ]:
        out = tmp_path / request.step
        for name, data in files.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
        if request is per_series:
            (out / "result.dcm").write_bytes(_derived_from(MR))  # a DICOM result
        runner.publish_outputs(request, out)
    recorded = index.find_run_outputs()
    assert len(recorded) == 3
    assert len(list(store.list("runs/"))) == 4
    off_layout = ["runs/seg/r1/stray.json", "runs/seg/r1/mask/not-a-uid/x.json"]
    for key in off_layout:
        store.put(key, b"stray")

    seen: list[tuple[int, int]] = []
    report = rebuild_index(store, index, progress=lambda done, total: seen.append((done, total)))

    assert report.scanned == 2 and report.indexed == 2
    assert report.results == 1  # the DICOM result, stored once under runs/
    assert report.run_outputs == 3
    assert seen == [(done, 8) for done in range(1, 9)]  # 2 under dicom/, 6 under runs/
    assert sorted(key for key, _ in report.skipped) == sorted(off_layout)
    assert all(reason for _, reason in report.skipped)
    rebuilt = index.find_run_outputs()
    # The key holds the run id key-safe; the time of creation is the object's mtime.
    safe_run_id = "manual__2026-01-01T00_00_00+00_00"
    assert [replace(o, created_at=0.0) for o in rebuilt] == [
        replace(o, run_id=safe_run_id, created_at=0.0) for o in recorded
    ]
    assert [(o.step, o.SeriesInstanceUID) for o in rebuilt] == [
        ("mask", ct.SeriesInstanceUID),
        ("mask", ct.SeriesInstanceUID),
        ("report", ""),
    ]
    for output in rebuilt:
        info = store.head(output.object_key)
        assert info is not None and output.created_at == info.modified.timestamp()
    assert [o.object_key for o in index.find_run_outputs(run_id=safe_run_id)] == [
        o.object_key for o in rebuilt
    ]
    for key in off_layout:
        assert store.head(key) is not None


def _changed_copy(tmp_path: Path) -> Path:
    """CT_small with the same SOP Instance UID but another PatientName (a forged re-send)."""
    import pydicom

    dataset = pydicom.dcmread(CT)
    dataset.PatientName = "FORGED^NAME"
    path = tmp_path / "forged.dcm"
    dataset.save_as(path)
    return path


def test_a_resent_instance_with_other_bytes_keeps_the_first_copy(
    site: tuple[LocalObjectStore, SQLiteIndex, Ingestor], tmp_path: Path
) -> None:
    store, index, ingestor = site
    first = ingestor.ingest_file(CT, source_ae="A", projects=["p1"])
    forged = _changed_copy(tmp_path)
    with pytest.raises(InstanceConflict, match="the first copy is kept"):
        ingestor.ingest_file(forged, source_ae="A", move=True)
    with pytest.raises(InstanceConflict):
        ingestor.ingest_bytes(forged.read_bytes(), source_ae="A")
    assert store.get(first.record.object_key) == CT.read_bytes()
    stored = index.get_instance(first.record.SOPInstanceUID)
    assert stored is not None
    assert (stored.PatientName, stored.projects) == ("CompressedSamples^CT1", ["p1"])

    replacing = Ingestor(store, index, overwrite=True)
    result = replacing.ingest_file(forged, source_ae="A")
    assert result.replaced and not result.new
    assert store.get(first.record.object_key) == forged.read_bytes()
    assert not replacing.ingest_file(forged, source_ae="A").replaced  # same bytes again


def test_projects_default_to_default(site: tuple[LocalObjectStore, SQLiteIndex, Ingestor]) -> None:
    _, index, ingestor = site
    record = ingestor.ingest_file(CT, source_ae="A").record
    assert record.projects == ["default"]
    (study,) = index.find_studies(Query(projects=["default"]))
    assert study.StudyInstanceUID == record.StudyInstanceUID
