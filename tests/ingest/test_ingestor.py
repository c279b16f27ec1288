"""The durable ingest path and the index rebuild, on a real local store and SQLite index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from openjip.index import Query
from openjip.index.sqlite import SQLiteIndex
from openjip.ingest import Ingestor, InvalidInstance, rebuild_index
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
