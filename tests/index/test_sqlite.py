"""What only the SQLite index has: its file, WAL, locking across threads and processes, fork,
failure reasons, and the upsert rate (printed, never asserted)."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file

from openjip.index import IndexUnavailable, InstanceRecord, InvalidRecord, Query
from openjip.index.sqlite import SCHEMA_VERSION, SQLiteIndex

WORKER = Path(__file__).with_name("index_worker.py")


def test_file_is_in_wal_mode(sqlite_index: SQLiteIndex, make_instance: Any) -> None:
    sqlite_index.upsert_instance(make_instance("1", "2", "3"))
    with sqlite3.connect(sqlite_index.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert sqlite_index.path.with_name(sqlite_index.path.name + "-wal").exists()


def test_creates_its_folder(tmp_path: Path) -> None:
    index = SQLiteIndex(tmp_path / "a" / "b" / "index.sqlite3")
    index.check()
    assert (tmp_path / "a" / "b" / "index.sqlite3").is_file()
    index.close()


def test_a_writer_waits_for_the_lock_of_another(
    sqlite_index: SQLiteIndex, make_instance: Any
) -> None:
    """Another process-like connection holds the write lock for a while; the upsert waits
    (busy timeout) instead of failing with 'database is locked'."""
    sqlite_index.check()
    other = sqlite3.connect(sqlite_index.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release_later() -> None:
        time.sleep(0.5)
        other.execute("COMMIT")
        released.set()

    threading.Thread(target=release_later).start()
    assert sqlite_index.upsert_instance(make_instance("1", "2", "3")) is True
    assert released.is_set()
    other.close()


def test_writers_take_turns_on_the_lock_file(sqlite_index: SQLiteIndex, make_instance: Any) -> None:
    """Another process holding the writer lock file (as a receiver worker does while it
    writes) keeps the upsert waiting, and it goes on as soon as the lock is released."""
    sqlite_index.check()
    lock_path = sqlite_index.path.with_name(sqlite_index.path.name + "-writer.lock")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(lock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
    writer = threading.Thread(
        target=sqlite_index.upsert_instance, args=(make_instance("1", "2", "3"),)
    )
    writer.start()
    writer.join(timeout=1.0)
    assert writer.is_alive(), "the upsert did not wait for the writer lock"
    assert holder.communicate(b"release\n", timeout=30)[1] is None
    writer.join(timeout=30)
    assert not writer.is_alive()
    assert len(sqlite_index.find_instances(Query())) == 1


_HOLD_LOCK = """
import fcntl, sys
with open(sys.argv[1], "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.readline()
"""


def fds_open_on(path: Path) -> int:
    return sum(
        1 for fd in Path("/proc/self/fd").iterdir() if os.path.realpath(fd) == str(path.resolve())
    )


def test_many_threads_write_exactly_and_reuse_connections(
    sqlite_index: SQLiteIndex, make_instance: Any
) -> None:
    """Like a receiver: one short-lived thread per association, 16 writing at once, twice."""
    records = [make_instance(f"1.{n}", f"2.{n % 4}", "3", Modality="CT") for n in range(800)]

    def burst(batch: list[Any]) -> None:
        barrier = threading.Barrier(16)

        def associate(worker: int) -> None:
            barrier.wait()
            for record in batch[worker::16]:
                sqlite_index.upsert_instance(record)
                sqlite_index.upsert_instance(record)  # re-receive

        threads = [threading.Thread(target=associate, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    burst(records[:400])
    # SQLite keeps a closed connection's descriptor while other connections hold locks on the
    # file, and reuses it; what matters is that new threads do not add connections for good.
    open_after_first = fds_open_on(sqlite_index.path)
    burst(records[400:])
    assert fds_open_on(sqlite_index.path) <= open_after_first
    assert [s.NumberOfSeriesRelatedInstances for s in sqlite_index.find_series(Query())] == [
        200
    ] * 4
    (study,) = sqlite_index.find_studies(Query())
    assert (study.NumberOfStudyRelatedSeries, study.NumberOfStudyRelatedInstances) == (4, 800)


def test_a_refused_call_fails_alone_among_concurrent_ones(
    sqlite_index: SQLiteIndex, make_instance: Any
) -> None:
    """Calls of concurrent threads share transactions (group commit); a refused record fails
    only its own call, the others' records are committed."""
    sqlite_index.upsert_instance(make_instance("0", "A", "ST"))
    barrier = threading.Barrier(24)
    refused: list[int] = []

    def call(n: int) -> None:
        barrier.wait()
        study = "OTHER" if n == 7 else "ST"  # series A already belongs to study ST
        try:
            sqlite_index.upsert_instances(
                [make_instance(f"{n}.1", f"S{n}", "ST"), make_instance(f"{n}.2", "A", study)]
            )
        except InvalidRecord:
            refused.append(n)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert refused == [7]
    uids = {i.SOPInstanceUID for i in sqlite_index.find_instances(Query())}
    assert uids == {"0"} | {f"{n}.{k}" for n in range(24) if n != 7 for k in (1, 2)}
    (study,) = sqlite_index.find_studies(Query())
    assert (study.NumberOfStudyRelatedSeries, study.NumberOfStudyRelatedInstances) == (24, 47)


def _upsert_in_child(index: SQLiteIndex, record: Any) -> None:
    os._exit(0 if index.upsert_instance(record) and len(index.find_instances(Query())) == 2 else 1)


def test_a_forked_child_opens_its_own_connections(
    sqlite_index: SQLiteIndex, make_instance: Any
) -> None:
    sqlite_index.upsert_instance(make_instance("1", "2", "3"))
    child = multiprocessing.get_context("fork").Process(
        target=_upsert_in_child, args=(sqlite_index, make_instance("4", "2", "3"))
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    # The parent's connections still work after the child closed its own and exited.
    assert sqlite_index.upsert_instance(make_instance("5", "2", "3")) is True
    (series,) = sqlite_index.find_series(Query())
    assert series.NumberOfSeriesRelatedInstances == 3


def test_kill_9_loses_no_acknowledged_upsert(tmp_path: Path) -> None:
    """A writer killed mid-stream: every upsert that had returned is there, counts are exact."""
    path = tmp_path / "index.sqlite3"
    go = tmp_path / "go"
    go.touch()
    env = {**os.environ, "OPENJIP_INDEX__BACKEND": "sqlite", "OPENJIP_INDEX__PATH": str(path)}
    writer = subprocess.Popen(
        [sys.executable, str(WORKER), str(go), "acknowledge", "1"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    acknowledged = [writer.stdout.readline().strip() for _ in range(300)]
    writer.kill()
    writer.wait(timeout=60)
    acknowledged += [line.strip() for line in writer.stdout]
    index = SQLiteIndex(path)
    found = {i.SOPInstanceUID for i in index.find_instances(Query())}
    assert set(acknowledged) <= found
    series = index.find_series(Query())
    assert sum(s.NumberOfSeriesRelatedInstances for s in series) == len(found)
    (study,) = index.find_studies(Query())
    assert study.NumberOfStudyRelatedInstances == len(found)
    assert study.NumberOfStudyRelatedSeries == len(series)
    index.close()


# -- failures, with their reason ----------------------------------------------------------------


def test_unavailable_when_the_folder_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    index = SQLiteIndex(tmp_path / "file" / "index.sqlite3")
    with pytest.raises(IndexUnavailable, match="index folder"):
        index.check()
    with pytest.raises(IndexUnavailable):
        index.upsert_instance(InstanceRecord("1", "2", "3"))


def test_unavailable_when_the_path_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "index.sqlite3").mkdir()
    with pytest.raises(IndexUnavailable, match="unable to open"):
        SQLiteIndex(tmp_path / "index.sqlite3").check()


def test_unavailable_when_the_file_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "index.sqlite3").write_bytes(b"garbage " * 1000)
    with pytest.raises(IndexUnavailable, match="not a database"):
        SQLiteIndex(tmp_path / "index.sqlite3").find_studies(Query())


def test_unavailable_when_the_file_was_removed(sqlite_index: SQLiteIndex) -> None:
    sqlite_index.check()
    sqlite_index.path.unlink()
    with pytest.raises(IndexUnavailable, match="removed"):
        sqlite_index.check()


def test_unavailable_when_made_by_a_newer_openjip(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "index.sqlite3") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(IndexUnavailable, match=f"version {SCHEMA_VERSION + 1}, newer than"):
        SQLiteIndex(tmp_path / "index.sqlite3").check()


def test_unavailable_after_close(sqlite_index: SQLiteIndex) -> None:
    sqlite_index.check()
    sqlite_index.close()
    with pytest.raises(IndexUnavailable, match="closed"):
        sqlite_index.find_series(Query())


# -- the hot path ---------------------------------------------------------------------------------


def ct_header() -> dict[str, Any]:
    """The DICOM JSON header of a real CT image, pixel data left out."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    return ds.to_json_dict()


@pytest.mark.slow
def test_upsert_rate_of_the_receiver(
    sqlite_index: SQLiteIndex, make_instance: Any, capsys: Any
) -> None:
    """10 000 instances, one upsert call each as the receiver makes them (rate printed only)."""
    header = ct_header()
    records = [
        make_instance(
            f"1.2.826.0.1.3680043.8.498.{n}",
            f"1.2.826.0.1.3680043.8.498.2.{n // 500}",
            f"1.2.826.0.1.3680043.8.498.3.{n // 2000}",
            Modality="CT",
            PatientID=f"P{n // 2000}",
            StudyDescription="CT Chest",
            SeriesDescription=f"Series {n // 500}",
            InstanceNumber=n % 500,
            header=header,
        )
        for n in range(10_000)
    ]
    started = time.perf_counter()
    for record in records:
        sqlite_index.upsert_instance(record)
    elapsed = time.perf_counter() - started
    assert len(sqlite_index.find_series(Query())) == 20
    with capsys.disabled():
        print(
            f"\nSQLite upsert, one call per instance: {len(records) / elapsed:,.0f} instances/s,"
            f" {elapsed / len(records) * 1e6:.0f} µs each (header {len(str(header))} chars)"
        )


LOOKUPS = [
    Query(PatientID="P3"),
    Query(PatientName="DOE^1*"),
    Query(StudyDate="20240301-20240401"),
    Query(AccessionNumber="A3"),
    Query(Modality="CT", limit=10),
    Query(BodyPartExamined="HEAD"),
    Query(StudyInstanceUID=["3.4"]),
    Query(SeriesInstanceUID=["2.4", "2.5"]),
    Query(SOPInstanceUID=["1.5"]),
    Query(text="doe"),
]


@pytest.mark.parametrize("query", LOOKUPS, ids=repr)
def test_lookups_use_indexes(
    sqlite_index: SQLiteIndex, make_instance: Any, monkeypatch: pytest.MonkeyPatch, query: Query
) -> None:
    """No lookup reads a whole table of records (its plan has no SCAN of them)."""
    sqlite_index.upsert_instances(
        [
            make_instance(f"1.{n}", f"2.{n // 10}", f"3.{n // 100}", PatientID=f"P{n // 100}")
            for n in range(1000)
        ]
    )
    plans: list[str] = []
    read = sqlite_index._read

    def explain(sql: str, params: Any) -> Any:
        plans.extend(row[3] for row in read(f"EXPLAIN QUERY PLAN {sql}", params))
        return read(sql, params)

    monkeypatch.setattr(sqlite_index, "_read", explain)
    sqlite_index.find_studies(query)
    sqlite_index.find_series(query)
    sqlite_index.find_instances(query)
    scans = [step for step in plans if step.startswith("SCAN") and "VIRTUAL TABLE" not in step]
    assert scans == []


def test_an_index_of_schema_1_puts_every_study_into_the_default_project(
    tmp_path: Path, make_instance: Any
) -> None:
    path = tmp_path / "old.sqlite3"
    index = SQLiteIndex(path)
    index.upsert_instances([make_instance("1.1.1", "1.1", "1"), make_instance("2.1.1", "2.1", "2")])
    index.close()
    with sqlite3.connect(path) as old:  # what a version-1 file looks like
        old.execute("DROP TABLE study_projects")
        old.execute("PRAGMA user_version = 1")
    index = SQLiteIndex(path)
    try:
        assert [s.projects for s in index.find_studies(Query())] == [["default"], ["default"]]
        assert len(index.find_studies(Query(projects=["default"]))) == 2
    finally:
        index.close()
