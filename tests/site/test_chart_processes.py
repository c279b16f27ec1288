"""The chart's receiver container, started as a process exactly as the chart starts it (command,
args and environment from the rendered chart, see chart_processes.py), against a real S3 server
(SeaweedFS standing in for MinIO) and a real local Airflow: a CT series sent with dcmtk's
storescu starts ct-body-mask, and a restarted pod (a fresh emptyDir, so an empty run queue)
recovers its runs from the index without starting a second one.

One named deviation from the chart: the index is SQLite (a file outside the pod's emptyDir,
standing in for OpenSearch, which cannot run here).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: no test folder on sys.path

from chart_processes import ChartProcess, Loopback, chart_process, container, render, workload

from openjip.airflow.client import AirflowUnavailable, site_password
from openjip.airflow.series_arrival import QUEUE_FILE, RunRequestQueue

T = TypeVar("T")
RECEIVER = "site-openjip-receiver"
WORKFLOW = "ct-body-mask"


def wait_for(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``condition`` until it gives something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Started:
    """One started chart process, its output kept in a file for the failure message."""

    def __init__(self, process: ChartProcess, log: Path) -> None:
        self.spec = process
        self.log = log
        with log.open("ab") as output:
            self.popen = subprocess.Popen(
                process.argv, env=process.env, stdout=output, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def ready(self, port: int) -> bool:
        if self.popen.poll() is not None:
            raise AssertionError(f"exited with {self.popen.returncode}:\n{self.output()}")
        return _accepts(port)

    def stop(self) -> None:
        """SIGTERM, as the kubelet stops a container; SIGKILL after the grace period."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


@pytest.fixture
def started() -> Iterator[list[Started]]:
    processes: list[Started] = []
    yield processes
    for process in processes:
        process.stop()


def _runs_of(client: Any, uid: str) -> list[dict[str, Any]] | None:
    try:
        runs = client.runs(WORKFLOW)
    except AirflowUnavailable:  # a busy api-server on a loaded machine; ask again
        return None
    return [run for run in runs if f"__{uid}__" in run["dag_run_id"]]


def test_a_series_sent_to_the_charts_receiver_starts_its_workflow_also_after_a_restart(
    local_site: Any,
    s3_server: Any,
    ct_phantom: list[Path],
    tmp_path: Path,
    started: list[Started],
) -> None:
    objects = render()
    spec = container(workload(objects, "Deployment", RECEIVER), "receiver")
    assert spec["args"] == ["receiver"]  # the chart runs `openjip receiver`
    airflow_url = local_site.settings.airflow_url.removeprefix("http://")
    loopback = Loopback(
        services={
            "site-openjip-minio:9000": s3_server.endpoint,
            "site-openjip-airflow-api:8080": airflow_url,
        },
        secrets={
            ("site-openjip-store", "access-key"): s3_server.access_key,
            ("site-openjip-store", "secret-key"): s3_server.secret_key,
            ("site-openjip-airflow", "admin-password"): site_password(local_site.settings),
        },
    )
    index_file = tmp_path / "index" / "index.sqlite3"  # outlives the pod, as OpenSearch would
    index_file.parent.mkdir()
    process = chart_process(
        objects,
        spec,
        loopback,
        tmp_path / "pod",
        overrides={"OPENJIP_INDEX__BACKEND": "sqlite", "OPENJIP_INDEX__PATH": str(index_file)},
    )
    assert process.env["OPENJIP_MODE"] == "kubernetes"
    assert process.env["OPENJIP_STORAGE__BACKEND"] == "s3"
    assert process.env["OPENJIP_STORAGE__S3_BUCKET"] == "openjip"
    assert process.env["OPENJIP_AIRFLOW__URL"] == local_site.settings.airflow_url
    assert "OPENJIP_AIRFLOW__ENABLED" not in process.env  # nothing but the chart's env turns it on
    dicom_port = process.ports[11112]
    home = Path(process.env["OPENJIP_HOME"])

    receiver = Started(process, tmp_path / "receiver.log")
    started.append(receiver)
    wait_for(lambda: receiver.ready(dicom_port), 60, "the receiver to listen")
    uid = str(pydicom.dcmread(ct_phantom[0], stop_before_pixels=True).SeriesInstanceUID)
    storescu = ["/usr/bin/storescu", "-aec", "OPENJIP", "127.0.0.1", str(dicom_port)]
    subprocess.run(
        [*storescu, *map(str, ct_phantom)],
        env=dict(os.environ, TCP_NODELAY="1"),
        check=True,
        capture_output=True,
        timeout=120,
    )

    client = local_site.client()
    try:
        runs = wait_for(lambda: _runs_of(client, uid), 120, f"a {WORKFLOW} run of the series")
        assert [(run["dag_run_id"], run["conf"]) for run in runs] == [
            (f"openjip__{uid}__v1", {"series": [uid]})
        ], receiver.output()

        # The pod restarts: its emptyDir (and the run queue in it) is gone, the index is not.
        receiver.stop()
        shutil.rmtree(home)
        home.mkdir()
        again = Started(process, tmp_path / "receiver.log")
        started.append(again)
        wait_for(lambda: again.ready(dicom_port), 60, "the restarted receiver to listen")
        queue_file = home / QUEUE_FILE

        def recovered() -> bool:
            if not queue_file.exists():
                return False
            queue = RunRequestQueue(queue_file)
            try:
                return [(r.run_id, r.delivered_at is not None) for r in queue.all()] == [
                    (f"openjip__{uid}__v1", True)
                ]
            finally:
                queue.close()

        wait_for(recovered, 60, "the run to be queued again and found in Airflow")
        assert len(_runs_of(client, uid) or []) == 1
    finally:
        client.close()
