"""The SQLite index file removed or replaced under a running service: calls are refused with
IndexUnavailable (never acknowledged into a removed file) until a file is back, restored or
made afresh by another process; then the running handle uses it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from openjip.index import IndexUnavailable, InstanceRecord, Query
from openjip.index.sqlite import SQLiteIndex
from openjip.index.sqlite.connections import ConnectionPool

WORKER = Path(__file__).with_name("index_worker.py")


def remove_index_files(path: Path) -> None:
    """What ``rm index.sqlite3*`` does."""
    for file in path.parent.glob(path.name + "*"):
        file.unlink()


@dataclass
class Writer:
    """A thread upserting one instance after another, as receiver associations do."""

    index: SQLiteIndex
    calls: list[tuple[float, str, bool]] = field(default_factory=list)
    """(monotonic start, SOPInstanceUID, acknowledged) of every upsert."""
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            uid = f"1.9.{n}"
            started = time.monotonic()
            try:
                self.index.upsert_instance(
                    InstanceRecord(uid, "2.9", "3.9", size=10, received_at=time.time())
                )
                self.calls.append((started, uid, True))
            except IndexUnavailable:
                self.calls.append((started, uid, False))
                time.sleep(0.005)
            n += 1

    def wait_for(self, count: int, *, acknowledged: bool, after: float) -> None:
        """Until ``count`` calls that started after ``after`` came back so (bounded)."""
        deadline = time.monotonic() + 60
        while self.outcomes(after).count(acknowledged) < count:
            assert time.monotonic() < deadline, f"{count} calls never came back {acknowledged}"
            time.sleep(0.01)

    def outcomes(self, after: float) -> list[bool]:
        return [ok for started, _, ok in list(self.calls) if started > after]

    def finish(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(timeout=60)


@pytest.fixture
def writer(sqlite_index: SQLiteIndex) -> Any:
    running = Writer(sqlite_index)
    running.start()
    yield running
    running.finish()


def test_removed_under_a_writer_refuses_until_another_process_makes_a_new_file(
    sqlite_index: SQLiteIndex, writer: Writer, tmp_path: Path
) -> None:
    path = sqlite_index.path
    writer.wait_for(20, acknowledged=True, after=0.0)
    remove_index_files(path)
    removed = time.monotonic()
    writer.wait_for(20, acknowledged=False, after=removed)

    # Every write that began once the file was gone was refused, and none re-created it.
    assert True not in writer.outcomes(removed)
    assert not path.exists()
    with pytest.raises(IndexUnavailable, match="removed"):
        sqlite_index.find_instances(Query())
    with pytest.raises(IndexUnavailable, match="removed"):
        sqlite_index.check()

    # `openjip index rebuild` in another process makes a fresh file and fills it.
    env = {**os.environ, "OPENJIP_INDEX__BACKEND": "sqlite", "OPENJIP_INDEX__PATH": str(path)}
    go = tmp_path / "go"
    go.touch()
    rebuilt = subprocess.run(
        [sys.executable, str(WORKER), str(go), "upsert", "1.8", "5", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert rebuilt.stdout.strip() == "5"
    back = time.monotonic()
    writer.wait_for(20, acknowledged=True, after=back)
    writer.finish()

    sqlite_index.check()
    fresh = SQLiteIndex(path)
    found = {i.SOPInstanceUID for i in fresh.find_instances(Query())}
    fresh.close()
    after_rebuild = [uid for started, uid, ok in writer.calls if ok and started > back]
    assert {f"1.8.{i}" for i in range(5)} <= found
    assert set(after_rebuild) <= found
    # Nothing acknowledged while the file was gone can be in the new file or anywhere else.
    refused = {uid for _, uid, ok in writer.calls if not ok}
    assert not refused & found


def test_a_restored_file_is_used_again(sqlite_index: SQLiteIndex, make_instance: Any) -> None:
    path = sqlite_index.path
    sqlite_index.upsert_instance(make_instance("1.1", "2", "3"))
    backup = path.with_name("backup.sqlite3")
    with sqlite3.connect(path) as source, sqlite3.connect(backup) as copy:
        source.backup(copy)
    remove_index_files(path)
    with pytest.raises(IndexUnavailable, match="removed"):
        sqlite_index.upsert_instance(make_instance("1.2", "2", "3"))
    assert not path.exists()

    os.replace(backup, path)
    assert sqlite_index.upsert_instance(make_instance("1.3", "2", "3")) is True
    found = [i.SOPInstanceUID for i in sqlite_index.find_instances(Query())]
    assert found == ["1.1", "1.3"]
    (series,) = sqlite_index.find_series(Query())
    assert series.NumberOfSeriesRelatedInstances == 2


def test_a_write_whose_file_is_removed_during_the_transaction_is_refused(tmp_path: Path) -> None:
    """Removal between the check before lending a connection and the commit."""
    path = tmp_path / "index.sqlite3"
    pool = ConnectionPool(path)
    pool.check()

    def remove_then_write(cur: sqlite3.Cursor) -> None:
        remove_index_files(path)
        cur.execute("INSERT INTO instance_headers (instance_id, header) VALUES (1, '{}')")

    with pytest.raises(IndexUnavailable, match="during a write"):
        pool.write(remove_then_write)
    pool.close()
