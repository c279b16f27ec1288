"""kill -9 of the receiver process while storescu sends 520 instances: after a restart every
instance storescu saw acknowledged is stored, readable and indexed. With the S3 receive cache
the receiver is killed twice (during ingest, then while the upload backlog drains) and after
the restart every acknowledged instance ends up whole in the bucket; the S3 server is frozen
(SIGSTOP) during ingest, so the receiver acknowledges from its cache alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from openjip.storage import ObjectStore
from openjip.storage.local import LocalObjectStore
from openjip.storage.s3 import S3ObjectStore


@pytest.fixture(scope="module")
def series_520(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_ct_series(tmp_path_factory.mktemp("crash-series"), slices=520, rows=64, columns=64)


def _start_receiver(home: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **env,
        "OPENJIP_HOME": str(home),
        "OPENJIP_RECEIVER__PORT": str(port),
        "OPENJIP_RECEIVER__WORKERS": "1",
        "OPENJIP_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "openjip.receiver"], env=env)
    wait_for_echo(port)
    return process


def _cached_files(home: Path) -> list[Path]:
    return [path for path in (home / "s3-cache" / "objects").rglob("*") if path.is_file()]


@dataclass
class Site:
    """The receiver's storage environment, the store where objects must end up, and the S3
    server's process (to freeze it) when there is one."""

    env: dict[str, str]
    final_store: Callable[[Settings], ObjectStore]
    s3_process: subprocess.Popen[bytes] | None = None


@pytest.fixture(params=["local", "s3-cached"])
def site(request: pytest.FixtureRequest) -> Site:
    if request.param == "local":
        return Site({}, lambda settings: LocalObjectStore(settings.storage_path))
    s3_server: Any = request.getfixturevalue("s3_server_factory")()
    bucket = f"crash-{uuid.uuid4().hex[:12]}"
    env = {
        "OPENJIP_STORAGE__BACKEND": "s3",
        "OPENJIP_STORAGE__S3_ENDPOINT": s3_server.endpoint,
        "OPENJIP_STORAGE__S3_BUCKET": bucket,
        "OPENJIP_STORAGE__S3_ACCESS_KEY": s3_server.access_key,
        "OPENJIP_STORAGE__S3_SECRET_KEY": s3_server.secret_key,
        "OPENJIP_STORAGE__S3_CACHE": "true",
    }
    store = S3ObjectStore.from_settings(s3_server.storage_settings(bucket))
    return Site(env, lambda _: store, s3_server.process)


def test_kill_9_during_ingest_loses_no_acknowledged_instance(
    series_520: list[Path], tmp_path: Path, site: Site
) -> None:
    env = site.env
    home = tmp_path / "home"
    port = free_port()
    receiver = _start_receiver(home, port, env)
    if site.s3_process is not None:
        site.s3_process.send_signal(signal.SIGSTOP)
    settings = Settings(home=home)
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
            if settings.index_path.exists() and len(indexed_instances(settings)) >= 150:
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
        if site.s3_process is not None:
            site.s3_process.send_signal(signal.SIGCONT)
    acknowledged = storescu_successes(log)
    assert 100 <= len(acknowledged) < len(series_520), log[-2000:]

    if env:
        assert len(_cached_files(home)) >= len(acknowledged)  # the S3 server took nothing
    restarted = _start_receiver(home, free_port(), env)
    if env:
        # Killed again while the backlog left by the first kill is being uploaded.
        deadline = time.monotonic() + 60
        while len(_cached_files(home)) > len(acknowledged) // 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(restarted.pid, signal.SIGKILL)
        restarted.wait()
        assert _cached_files(home), "the backlog was gone before the second kill"
        restarted = _start_receiver(home, free_port(), env)
        deadline = time.monotonic() + 120
        while _cached_files(home) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _cached_files(home) == []
    try:
        store = site.final_store(settings)
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
