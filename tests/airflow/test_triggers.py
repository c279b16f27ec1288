"""Series-arrival triggers against a real local Airflow: one run per (workflow, series, series
version), triggers wait on disk while Airflow is unreachable, and end to end a CT series sent
with dcmtk's storescu starts ct-body-mask by itself and its SEG lands in the index."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pydicom

from openjip.airflow.client import AirflowClient, AirflowUnavailable
from openjip.airflow.triggers import (
    SeriesTriggerHook,
    TriggerQueue,
    matches,
    run_id_for,
    triggered_runs,
)
from openjip.config import Settings
from openjip.index import Query, SeriesRecord, open_index
from openjip.receiver import ReceiverService
from openjip.workflows.loader import PROJECT_WORKFLOWS, discover_specs
from openjip.workflows.spec import MatchRule

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``condition`` until it gives something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _series(uid: str, version: int = 1, **fields: Any) -> SeriesRecord:
    values: dict[str, Any] = {
        "SeriesInstanceUID": uid,
        "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1",
        "Modality": "CT",
        "NumberOfSeriesRelatedInstances": 3,
        "complete": True,
        "version": version,
    }
    values.update(fields)
    return SeriesRecord(**values)


def test_rules_match_whole_fields_ignoring_case() -> None:
    rule = MatchRule(Modality="CT", SeriesDescription=".*(body|abdomen).*", min_instances=2)
    assert matches(rule, _series("1.2", SeriesDescription="Thorax Abdomen 1mm"))
    assert not matches(rule, _series("1.2", Modality="CTX", SeriesDescription="abdomen"))
    assert not matches(rule, _series("1.2", SeriesDescription="head"))
    assert not matches(
        rule, _series("1.2", SeriesDescription="abdomen", NumberOfSeriesRelatedInstances=1)
    )


def test_only_matching_received_series_start_example_workflows() -> None:
    specs = list(discover_specs([PROJECT_WORKFLOWS]).specs.values())
    assert triggered_runs(specs, _series("1.2.3")) == [("ct-body-mask", {"series": ["1.2.3"]})]
    assert triggered_runs(specs, _series("1.2.3", Modality="MR")) == []
    assert triggered_runs(specs, _series("1.2.3", derived_from="1.2.2")) == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _runs_of(client: AirflowClient, dag_id: str, uid: str) -> list[dict[str, Any]]:
    try:
        runs = client.runs(dag_id)
    except AirflowUnavailable:  # a busy api-server on a loaded machine; ask again
        return []
    return [run for run in runs if f"__{uid}__" in run["dag_run_id"]]


def _finished(client: AirflowClient, dag_id: str, run_id: str) -> dict[str, Any] | None:
    try:
        run = client.run(dag_id, run_id)
    except AirflowUnavailable:  # a busy api-server on a loaded machine; ask again
        return None
    return run if run["state"] in ("success", "failed") else None


def test_one_run_per_series_version_and_triggers_wait_while_airflow_is_down(
    site_settings: Settings,
) -> None:
    uid = "1.2.826.0.1.3680043.8.498.424242"
    nobody = _free_port()
    unreachable = SeriesTriggerHook(
        site_settings,
        client_factory=lambda: AirflowClient(f"http://127.0.0.1:{nobody}", "admin", "x"),
    )
    unreachable(_series(uid))
    unreachable(_series(uid))
    queue = TriggerQueue(site_settings.home_dir / "workflow-triggers.sqlite3")
    [waiting] = wait_for(
        lambda: [t for t in queue.pending() if uid in t.run_id and t.attempts > 0],
        30,
        "a failed delivery attempt",
    )
    assert "unreachable" in waiting.last_error or "127.0.0.1" in waiting.last_error
    unreachable.stop()

    # Airflow is back (or the receiver restarted): what waited on disk is delivered.
    hook = SeriesTriggerHook(site_settings)
    hook.start()
    client = AirflowClient.from_settings(site_settings)
    try:
        wait_for(lambda: not [t for t in queue.pending() if uid in t.run_id], 60, "delivery")
        hook(_series(uid))  # the same version again: nothing new
        hook(_series(uid, version=2))  # new instances made a new version: one more run
        wait_for(lambda: not queue.pending(), 60, "delivery of version 2")
        runs = _runs_of(client, "ct-body-mask", uid)
        assert sorted(run["dag_run_id"] for run in runs) == [
            run_id_for(_series(uid, 1)),
            run_id_for(_series(uid, 2)),
        ]
        assert all(run["conf"] == {"series": [uid]} for run in runs)
    finally:
        hook.stop()
        client.close()
        queue.close()


def _storescu(files: list[Path], port: int) -> None:
    env = dict(os.environ, TCP_NODELAY="1")
    command = ["/usr/bin/storescu", "-aec", "OPENJIP", "127.0.0.1", str(port), *map(str, files)]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)


def test_ct_series_sent_to_the_site_starts_ct_body_mask_once(
    site_settings: Settings, ct_phantom: list[Path]
) -> None:
    uid = pydicom.dcmread(ct_phantom[0]).SeriesInstanceUID
    hook = SeriesTriggerHook(site_settings)
    receiver = ReceiverService(site_settings, hooks=[hook])
    receiver.start()
    client = AirflowClient.from_settings(site_settings)
    index = open_index(site_settings)
    try:
        _storescu(ct_phantom, receiver.address[1])

        started = wait_for(lambda: _runs_of(client, "ct-body-mask", uid), 120, "a run to start")
        assert [run["dag_run_id"] for run in started] == [f"openjip__{uid}__v1"]
        run_id = started[0]["dag_run_id"]
        finished = wait_for(
            lambda: (
                (run := client.run("ct-body-mask", run_id))["state"] in ("success", "failed")
                and run
            ),
            240,
            "the run to finish",
        )
        assert finished["state"] == "success"
        [seg] = [s for s in index.find_series(Query()) if s.derived_from == uid]
        assert seg.Modality == "SEG"
        # The operator's own log lines reach the Airflow task log.
        log = client.task_log("ct-body-mask", run_id, "segment", map_index=0)
        assert "wrote seg-body.dcm" in log and "step segment produced" in log

        _storescu(ct_phantom, receiver.address[1])
        idle = site_settings.receiver.series_idle_seconds
        time.sleep(idle * 3)  # let the sweep see the series idle again
        assert [s.version for s in index.find_series(Query(SeriesInstanceUID=[uid]))] == [1]
        assert len(_runs_of(client, "ct-body-mask", uid)) == 1
    finally:
        receiver.stop()
        hook.stop()
        client.close()
        index.close()
