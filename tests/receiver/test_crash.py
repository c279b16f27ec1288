"""kill -9 of the receiver process while storescu sends 520 instances: after a restart every
instance storescu saw acknowledged is stored, readable and indexed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from receiver_peers import (
    DCMTK,
    dataset_bytes,
    free_port,
    indexed_instances,
    storescu_successes,
    wait_for_echo,
)

from openjip.config import Settings
from openjip.dicom import read_instance
from openjip.phantom import write_ct_series
from openjip.storage.local import LocalObjectStore


@pytest.fixture(scope="module")
def series_520(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_ct_series(tmp_path_factory.mktemp("crash-series"), slices=520, rows=64, columns=64)


def _start_receiver(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "OPENJIP_HOME": str(home),
        "OPENJIP_RECEIVER__PORT": str(port),
        "OPENJIP_RECEIVER__WORKERS": "1",
        "OPENJIP_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "openjip.receiver"], env=env)
    wait_for_echo(port)
    return process


def test_kill_9_during_ingest_loses_no_acknowledged_instance(
    series_520: list[Path], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    port = free_port()
    receiver = _start_receiver(home, port)
    objects = home / "objects" / "dicom"
    sender = subprocess.Popen(
        [str(DCMTK / "storescu"), "-v", "-aec", "OPENJIP", "127.0.0.1", str(port),
         *map(str, series_520)],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if objects.exists() and sum(1 for _ in objects.rglob("*.dcm")) >= 150:
                break
            time.sleep(0.02)
        os.kill(receiver.pid, signal.SIGKILL)
        receiver.wait()
        log, _ = sender.communicate(timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
        if sender.poll() is None:
            sender.kill()
    acknowledged = storescu_successes(log)
    assert 100 <= len(acknowledged) < len(series_520), log[-2000:]

    restarted = _start_receiver(home, free_port())
    try:
        settings = Settings(home=home)
        store = LocalObjectStore(settings.storage_path)
        records = {r.SOPInstanceUID: r for r in indexed_instances(settings)}
        for name in acknowledged:
            sent = Path(name).read_bytes()
            uid = dcmread(name, stop_before_pixels=True).SOPInstanceUID
            assert uid in records, f"{name} acknowledged but not indexed"
            stored = store.get(records[uid].object_key)
            assert dataset_bytes(stored) == dataset_bytes(sent)
        # Whatever the store holds is whole: every object reads to its end.
        for info in store.list("dicom/"):
            read_instance(store.get(info.key))
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
