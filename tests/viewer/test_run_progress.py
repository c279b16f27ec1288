"""A step's progress, as its operator reports it with ``openjip.sdk.progress``, shown in the run
on a running local site (web service, real Airflow): the Images page's run answer carries the
running step's last report, Airflow keeps it as the task instance's ``progress`` XCom and writes
it into the task log. The operator holds at half way until the test releases it, so the
running state is seen without timing anything."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from openjip.airflow.local import AirflowComponent
from openjip.airflow.progress import PROGRESS_XCOM
from openjip.config import Settings
from openjip.phantom import write_ct_series
from openjip.web import WebService

OPERATOR = """\
name: wait-with-progress
version: 0.1.0
description: Reports half way, then waits until its release file exists.
image: ghcr.io/openjip/wait-with-progress:0.1.0
command: [python, main.py]
input: {kind: dicom-series, description: One series.}
output: {kind: json, description: A note.}
params:
  release: {type: string, title: Release file, description: Go on once it exists., default: ""}
resources: {cpu: "1", memory: 1Gi, gpu: 0}
"""
MAIN = """\
import json
import time
from pathlib import Path

from openjip import sdk

sdk.progress(0.5, "half way: 1 of 2 series parts")
release = Path(sdk.params()["release"])
while not release.exists():
    time.sleep(0.2)
sdk.progress(1.0, "done")
(sdk.output_dir() / "note.json").write_text(json.dumps({"released": True}))
"""
SPEC = """\
id: progress-demo
version: 1.0.0
title: Progress demo
description: One step that reports its progress.
params:
  release: {type: string, title: Release file, default: ""}
input: {kind: series}
steps:
  - name: wait
    operator: wait-with-progress@0.1.0
    params: {release: "{{ params.release }}"}
triggers: {manual: true}
"""


def _until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def demo_workflow(settings: Settings) -> None:
    """The site's own operator and workflow, in place before Airflow starts (it parses and
    unpauses every workflow then)."""
    operator = settings.home_dir / "operators" / "wait-with-progress"
    operator.mkdir(parents=True)
    (operator / "operator.yaml").write_text(OPERATOR)
    (operator / "main.py").write_text(MAIN)
    workflows = settings.home_dir / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    (workflows / "progress-demo.yaml").write_text(SPEC)


def test_the_running_step_shows_its_operators_progress(
    demo_workflow: None,
    viewer_site: WebService,
    airflow: AirflowComponent,
    doctor: tuple[str, str],
    ingest: Callable[[list[Path]], list[str]],
    tmp_path: Path,
) -> None:
    (series,) = ingest(write_ct_series(tmp_path / "ct", slices=2, rows=16, columns=16))
    release = tmp_path / "release"

    with httpx.Client(base_url=viewer_site.url, auth=doctor, timeout=60) as http:
        body = {
            "workflow": "progress-demo",
            "series": [series],
            "params": {"release": str(release)},
        }
        started = http.post("/images/api/runs", json=body)
        assert started.status_code in (200, 201), started.text
        run_id = started.json()["run_id"]
        url = f"/images/api/runs/progress-demo/{run_id}"

        def running_step() -> dict[str, Any] | None:
            steps = http.get(url).json()["steps"]
            return next((s for s in steps if s["step"] == "wait" and s["progress"]), None)

        step = _until(running_step, 300, "the running step's progress")
        assert step["state"] == "running"
        assert step["progress"] == {"fraction": 0.5, "message": "half way: 1 of 2 series parts"}
        release.touch()
        _until(lambda: http.get(url).json()["state"] in ("success", "failed"), 300, "the end")
        answer = http.get(url).json()
    assert answer["state"] == "success", answer
    (done,) = [s for s in answer["steps"] if s["step"] == "wait"]
    assert done["progress"] is None  # a finished step shows its state, not a stale bar

    client = airflow.client()
    try:
        pushed = client.xcom("progress-demo", run_id, "wait", PROGRESS_XCOM, map_index=0)
        log = client.task_log("progress-demo", run_id, "wait", map_index=0)
    finally:
        client.close()
    assert pushed == {"fraction": 1.0, "message": "done"}  # the last report is always kept
    assert "progress 50% half way: 1 of 2 series parts" in log
    assert "progress 100% done" in log
