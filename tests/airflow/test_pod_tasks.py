"""Kubernetes-mode DAGs: each step is a pod task (a KubernetesPodOperator) that Airflow manages,
and a run killed while its operator runs deletes the pod.

No cluster can run here: the provider's kubernetes client talks to kubernetes_api.py, a local
HTTP server speaking enough of the core/v1 pods API and recording every call. Everything between
Airflow and that API is the provider's own code (KubernetesPodOperator.execute, PodManager,
on_kill) run by Airflow's task runner under ``dag.test()``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: no test folder on sys.path

from kubernetes_api import KubernetesAPI

from openjip.airflow.pod_tasks import AnalysisPodOperator
from openjip.runner.grants import verify_grant
from openjip.runner.kubernetes import GRANT_ENV

DAGS = Path(__file__).resolve().parents[2] / "dags"
SERIES = "1.2.826.0.1.3680043.8.498.77"
GRANT_SECRET = "the-step-grant-key-of-this-test-0123456789"
RUN_ONE = f"""
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder={str(DAGS)!r}).dags["ct-body-mask"]
print("RUN STATE", dag.test(run_conf={{"series": [{SERIES!r}]}}).state)
"""


@pytest.fixture
def kubernetes_mode(openjip_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENJIP_MODE", "kubernetes")
    return openjip_home


@pytest.fixture
def kubernetes_api(tmp_path: Path) -> Iterator[KubernetesAPI]:
    server = KubernetesAPI(tmp_path).start()
    yield server
    server.stop()


def test_kubernetes_mode_steps_are_pod_tasks_with_cleanup_and_a_timeout(
    kubernetes_mode: Path,
) -> None:
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    mapped = bag.dags["ct-body-mask"].get_task("segment")  # one task instance per series
    segment = mapped.unmap({"series_uid": SERIES})  # type: ignore[union-attr]
    assert isinstance(segment, AnalysisPodOperator)
    assert isinstance(segment, KubernetesPodOperator)
    assert segment.deferrable  # waits in the triggerer, not in a worker slot
    assert segment.on_finish_action.value == "delete_pod"
    assert segment.on_kill_action.value == "delete_pod"
    assert segment.execution_timeout is not None
    assert segment.execution_timeout.total_seconds() == 240 * 60
    # An operator container may run for the whole step: the pod is Pending all that time.
    assert segment.startup_timeout_seconds == 240 * 60


def start_run(
    kubernetes_api: KubernetesAPI, tmp_path: Path, *, deferrable: bool
) -> tuple[subprocess.Popen[bytes], Path]:
    """Run ct-body-mask in kubernetes mode in its own process (its output in the returned log),
    with the step-grant secret analysis pods need."""
    env = dict(
        os.environ,
        OPENJIP_AIRFLOW__DEFERRABLE_PODS=str(deferrable).lower(),
        OPENJIP_ACCESS__STEP_TOKEN_SECRET=GRANT_SECRET,
        KUBECONFIG=str(kubernetes_api.kubeconfig),
    )
    log = tmp_path / "run.log"
    with log.open("wb") as output:
        run = subprocess.Popen(
            [sys.executable, "-c", RUN_ONE], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    return run, log


def test_a_run_killed_while_its_operator_runs_deletes_the_pod(
    airflow_db: Path, kubernetes_mode: Path, kubernetes_api: KubernetesAPI, tmp_path: Path
) -> None:
    run, log = start_run(kubernetes_api, tmp_path, deferrable=False)  # the task watches the pod
    try:
        deadline = time.monotonic() + 120
        while not kubernetes_api.api.made("GET", "") or not kubernetes_api.api.pods:
            assert run.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, "no pod was created"
            time.sleep(0.2)
        [(namespace, name)] = list(kubernetes_api.api.pods)
        while not kubernetes_api.api.made("GET", f"/pods/{name}"):  # the task watches the pod
            assert run.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, "the task never read its pod"
            time.sleep(0.2)
        pod = kubernetes_api.api.pods[(namespace, name)]
        assert pod["metadata"]["labels"]["openjip.org/step"] == "segment"
        assert [c["name"] for c in pod["spec"]["initContainers"]] == ["fetch", "step"]
        # What the pod holds: the web service's URL and a grant for this step and series only.
        fetch = {e["name"]: e for e in pod["spec"]["initContainers"][0]["env"]}
        _, granted = verify_grant(GRANT_SECRET, fetch[GRANT_ENV]["value"])
        assert (granted.step, granted.series_uids) == ("segment", [SERIES])
        assert "secretKeyRef" not in json.dumps(pod) and "OPENJIP_STORAGE__" not in json.dumps(pod)
        # The operator (init container "step") is running: the worker is told to stop.
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
    output_text = log.read_text(errors="replace")
    deletes = kubernetes_api.api.made("DELETE", f"/namespaces/{namespace}/pods/{name}")
    assert deletes, output_text[-4000:]
    assert kubernetes_api.api.pods == {}
    assert "Task failed with exception" in output_text
    assert "RUN STATE failed" in output_text


def test_a_deferred_step_is_watched_by_its_trigger_and_its_failed_pod_deleted(
    airflow_db: Path, kubernetes_mode: Path, kubernetes_api: KubernetesAPI, tmp_path: Path
) -> None:
    """The chart's default: the task defers and the provider's KubernetesPodTrigger watches the
    pod through the asynchronous kubernetes client (``dag.test()`` runs the trigger in line, as
    the triggerer would); the operator fails, the trigger sees it, the task resumes, fails and
    deletes the pod. (Its XCom sidecar never ran: reading it fails first, as in a cluster.)"""
    run, log = start_run(kubernetes_api, tmp_path, deferrable=True)
    try:
        deadline = time.monotonic() + 180
        while "KubernetesPodTrigger" not in log.read_text(errors="replace"):
            assert run.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, "the task never deferred to its trigger"
            time.sleep(0.2)
        [(namespace, name)] = list(kubernetes_api.api.pods)
        reads = len(kubernetes_api.api.made("GET", f"/pods/{name}"))
        while len(kubernetes_api.api.made("GET", f"/pods/{name}")) == reads:  # the trigger polls
            assert run.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, "the trigger never read the pod"
            time.sleep(0.2)
        assert not kubernetes_api.api.made("DELETE")
        kubernetes_api.api.fail_step(namespace, name, exit_code=3)
        run.wait(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
    output_text = log.read_text(errors="replace")
    assert "Pausing task as DEFERRED" in output_text
    assert "[DAG TEST] Trigger completed" in output_text  # the trigger saw the pod fail
    assert f"Pod {name} returned a failure." in output_text  # the task resumed and failed
    assert kubernetes_api.api.made("DELETE", f"/namespaces/{namespace}/pods/{name}"), output_text[
        -4000:
    ]
    assert kubernetes_api.api.pods == {}
    assert "RUN STATE failed" in output_text
