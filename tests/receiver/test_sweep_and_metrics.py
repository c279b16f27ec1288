"""The completion sweep (once per series version, listeners and JSONL events) and the metrics."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from receiver_peers import free_port, scu

from openjip.index.base import SeriesRecord
from openjip.index.sqlite import SQLiteIndex
from openjip.receiver import CompletionSweeper, JsonlEventLog, read_events
from openjip.receiver.series_complete import EVENTS_FILE


def _wait(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _send(receiver: Any, paths: list[Path]) -> None:
    syntax = dcmread(paths[0], stop_before_pixels=True).file_meta.TransferSyntaxUID
    with scu(receiver.address, [(CTImageStorage, [syntax])]) as assoc:
        for path in paths:
            assert assoc.send_c_store(path).Status == 0x0000


def test_idle_series_is_completed_once_per_version(
    receiver_factory: Callable[..., Any], ct_phantom: list[Path]
) -> None:
    calls: list[SeriesRecord] = []
    receiver = receiver_factory(
        listeners=[calls.append], series_idle_seconds=0.5, sweep_interval_seconds=0.1
    )
    _send(receiver, ct_phantom[:-1])
    _wait(lambda: len(calls) == 1)
    time.sleep(1.0)  # more sweeps, no new call
    assert len(calls) == 1
    first = calls[0]
    assert first.complete and first.version == 1
    assert first.NumberOfSeriesRelatedInstances == len(ct_phantom) - 1

    _send(receiver, ct_phantom[-1:])  # a late instance makes a new version
    _wait(lambda: len(calls) == 2)
    time.sleep(1.0)
    assert [c.version for c in calls] == [1, 2]
    assert calls[1].NumberOfSeriesRelatedInstances == len(ct_phantom)
    events = read_events(receiver.home / EVENTS_FILE)
    assert [e["series"]["version"] for e in events] == [1, 2]  # type: ignore[index]
    assert {e["event"] for e in events} == {"series_complete"}


def test_concurrent_sweepers_complete_a_series_once(
    ingest: Any, settings: Any, ct_phantom: list[Path]
) -> None:
    ingest(ct_phantom[:3])
    calls: list[SeriesRecord] = []
    indexes = [SQLiteIndex(settings.index_path) for _ in range(4)]
    sweepers = [
        CompletionSweeper(index, [calls.append], idle_seconds=0.0, interval=1.0)
        for index in indexes
    ]
    threads = [threading.Thread(target=sweeper.sweep) for sweeper in sweepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in indexes:
        index.close()
    assert len(calls) == 1


def test_a_failing_listener_does_not_stop_the_others(
    ingest: Any, settings: Any, ct_phantom: list[Path]
) -> None:
    ingest(ct_phantom[:2])
    calls: list[SeriesRecord] = []

    def broken(series: SeriesRecord) -> None:
        raise RuntimeError("listener bug")

    index = SQLiteIndex(settings.index_path)
    try:
        CompletionSweeper(index, [broken, calls.append], idle_seconds=0, interval=1).sweep()
    finally:
        index.close()
    assert len(calls) == 1


def test_metrics_endpoint(receiver_factory: Callable[..., Any], ct_phantom: list[Path]) -> None:
    port = free_port()
    receiver = receiver_factory(metrics_port=port)
    _send(receiver, ct_phantom[:2])
    ds = dcmread(ct_phantom[0])
    del ds.StudyInstanceUID
    with scu(receiver.address, [(CTImageStorage, [ds.file_meta.TransferSyntaxUID])]) as assoc:
        assert assoc.send_c_store(ds).Status == 0xC000
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    lines = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert lines["openjip_receiver_instances_received_total"] >= 2
    assert lines["openjip_receiver_bytes_received_total"] >= 2 * ct_phantom[0].stat().st_size
    assert lines['openjip_receiver_failures_total{status="0xC000"}'] >= 1
    assert lines["openjip_receiver_store_write_seconds_count"] >= 2
    assert lines["openjip_receiver_open_associations"] >= 1


def test_the_event_log_rotates_and_keeps_three_old_files(tmp_path: Path) -> None:
    log = JsonlEventLog(tmp_path / "series_complete.jsonl", max_bytes=1024)
    for number in range(40):
        log(SeriesRecord(f"1.2.{number}", "1.2"))
    files = sorted(path.name for path in tmp_path.iterdir())
    assert files == [f"series_complete.jsonl{suffix}" for suffix in ("", ".1", ".2", ".3")]
    # Whole lines only, none over the limit by more than one event, newest last.
    sizes = [(tmp_path / name).stat().st_size for name in files]
    assert all(size < 1024 + 1024 for size in sizes)
    newest = read_events(tmp_path / "series_complete.jsonl")
    assert newest[-1]["series"] == SeriesRecord("1.2.39", "1.2").to_dict()
    oldest = read_events(tmp_path / "series_complete.jsonl.3")
    assert oldest[0]["series"] != SeriesRecord("1.2.0", "1.2").to_dict()  # dropped


def test_a_hook_failing_on_a_full_disk_is_retried_until_it_succeeds(
    ingest: Any, settings: Any, ct_phantom: list[Path], small_filesystem: Path
) -> None:
    ingest(ct_phantom[:2])
    log = JsonlEventLog(small_filesystem / "events" / "series_complete.jsonl")
    filler = small_filesystem / "filler"
    with filler.open("wb") as file, contextlib.suppress(OSError):
        while True:
            file.write(b"\0" * 65536)
            file.flush()
    index = SQLiteIndex(settings.index_path)
    try:
        sweeper = CompletionSweeper(index, [log], idle_seconds=0, interval=1)
        assert len(sweeper.sweep()) == 1  # complete, but the event could not be written
        assert sweeper.pending_retries == 1
        assert sweeper.sweep() == [] and sweeper.pending_retries == 1  # still full
        filler.unlink()
        assert sweeper.sweep() == []
    finally:
        index.close()
    assert sweeper.pending_retries == 0
    (event,) = read_events(log.path)
    assert event["series"]["complete"] is True  # type: ignore[index]
