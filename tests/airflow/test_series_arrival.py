"""Series-arrival runs against a real local Airflow: one run per (workflow, series, series
version), run requests wait on disk while Airflow is unreachable, an emptied queue is recovered
from the index, and end to end a CT series sent with dcmtk's storescu to the receiver the site's
assembly builds starts ct-body-mask by itself and its SEG lands in the index."""

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
from openjip.airflow.series_arrival import (
    QUEUE_FILE,
    RunRequestQueue,
    SeriesArrivalRuns,
    matches,
    run_id_for,
    triggered_runs,
)
from openjip.config import Settings
from openjip.index import Query, SeriesRecord, open_index
from openjip.site import receiver_components
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


def test_one_run_per_series_version_and_run_requests_wait_while_airflow_is_down(
    site_settings: Settings,
) -> None:
    uid = "1.2.826.0.1.3680043.8.498.424242"
    nobody = _free_port()
    unreachable = SeriesArrivalRuns(
        site_settings,
        client_factory=lambda: AirflowClient(f"http://127.0.0.1:{nobody}", "admin", "x"),
    )
    unreachable(_series(uid))
    unreachable(_series(uid))
    queue = RunRequestQueue(site_settings.home_dir / QUEUE_FILE)
    [waiting] = wait_for(
        lambda: [t for t in queue.pending() if uid in t.run_id and t.attempts > 0],
        30,
        "a failed delivery attempt",
    )
    assert "unreachable" in waiting.last_error or "127.0.0.1" in waiting.last_error
    unreachable.stop()

    # Airflow is back (or the receiver restarted): what waited on disk is delivered.
    runs = SeriesArrivalRuns(site_settings)
    runs.start()
    client = AirflowClient.from_settings(site_settings)
    try:
        wait_for(lambda: not [t for t in queue.pending() if uid in t.run_id], 60, "delivery")
        runs(_series(uid))  # the same version again: nothing new
        runs(_series(uid, version=2))  # new instances made a new version: one more run
        wait_for(lambda: not queue.pending(), 60, "delivery of version 2")
        started = _runs_of(client, "ct-body-mask", uid)
        assert sorted(run["dag_run_id"] for run in started) == [
            run_id_for(_series(uid, 1)),
            run_id_for(_series(uid, 2)),
        ]
        assert all(run["conf"] == {"series": [uid]} for run in started)
    finally:
        runs.stop()
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
    runs, receiver = receiver_components(site_settings)
    assert isinstance(runs, SeriesArrivalRuns)
    runs.start()
    receiver.start()
    port = receiver.service.address[1]  # type: ignore[attr-defined]
    client = AirflowClient.from_settings(site_settings)
    index = open_index(site_settings)
    try:
        _storescu(ct_phantom, port)

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

        _storescu(ct_phantom, port)
        idle = site_settings.receiver.series_idle_seconds
        time.sleep(idle * 3)  # let the sweep see the series idle again
        assert [s.version for s in index.find_series(Query(SeriesInstanceUID=[uid]))] == [1]
        assert len(_runs_of(client, "ct-body-mask", uid)) == 1
    finally:
        receiver.stop()
        runs.stop()
        client.close()
        index.close()


def test_an_emptied_queue_is_refilled_from_the_index_once(
    settings: Settings, ingest: Callable[[list[Path]], list[str]], ct_phantom: list[Path]
) -> None:
    """What a receiver pod finds after a restart (its queue was on an emptyDir): the runs of
    series the index says became complete lately are queued again, once."""
    [uid] = ingest(ct_phantom)
    index = open_index(settings)
    try:
        [series] = index.idle_series(time.time() + 1)
        assert index.mark_series_complete(uid, series.last_received_at) is not None
    finally:
        index.close()
    nobody = _free_port()
    runs = SeriesArrivalRuns(
        settings, client_factory=lambda: AirflowClient(f"http://127.0.0.1:{nobody}", "a", "x")
    )
    try:
        assert runs.recover() == 1
        assert [(r.dag_id, r.run_id) for r in runs.queue.pending()] == [
            ("ct-body-mask", f"openjip__{uid}__v1")
        ]
        assert runs.recover() == 0  # already queued
    finally:
        runs.stop()
        runs.queue.close()
    outside_window = settings.model_copy(
        update={"airflow": settings.airflow.model_copy(update={"recover_completed_hours": 0.0})}
    )
    (settings.home_dir / QUEUE_FILE).unlink()
    assert SeriesArrivalRuns(outside_window).recover() == 0
