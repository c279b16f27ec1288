"""The chart's containers started for real with ``podman kube play``: images built from an
offline Debian base; the rendered receiver, web, federation and Airflow containers (commands,
env, non-root users, read-only root file systems) and the migrations Job (as init containers) in
one pod with a network namespace of its own (site_pod.py says what is mapped and why). Each
container becomes ready by its own readiness probe and answers its liveness probe; Airflow runs
against a real PostgreSQL with the chart's migration command and settings; a CT series sent with
dcmtk's storescu into the receiver container is stored in the object store and indexed.

Stand-ins, named: SeaweedFS for MinIO (with the chart's generated store credentials) and SQLite on
a shared volume for OpenSearch (which cannot run here); see netns_services.py. No cluster:
scheduling, Services, NetworkPolicies and the analysis pods are not exercised.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pydicom
import pytest
import yaml
from chart_processes import CHART_DIR, render, secret_values
from netns_services import NetnsServices, in_netns
from podman_engine import Podman, wait_until
from site_pod import SitePodBuilder

from openjip.config import Settings
from openjip.index import Query, open_index

OPENJIP_UID = 10001
INDEX_DIR = "/var/lib/openjip-index"
AIRFLOW = ("api", "scheduler", "dag-processor", "triggerer")


PROBE = """
import socket, ssl, sys, urllib.request
kind, scheme, port, path = sys.argv[1:5]
if kind == "tcpSocket":
    socket.create_connection(("127.0.0.1", int(port)), timeout=5).close()
else:
    url = f"{scheme.lower()}://127.0.0.1:{port}{path}"
    answer = urllib.request.urlopen(url, timeout=5, context=ssl._create_unverified_context())
    assert 200 <= answer.status < 400, answer.status
"""


def probe(podman: Podman, pod: str, pid: int, container: dict[str, Any], which: str) -> bool:
    """Whether the container's ``which`` probe succeeds now, done as the kubelet does it."""
    spec = container[which]
    if "exec" in spec:
        name = f"{pod}-{container['name']}"
        return podman.exec(name, *spec["exec"]["command"], timeout=120).returncode == 0
    ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
    kind = "httpGet" if "httpGet" in spec else "tcpSocket"
    action = spec[kind]
    port = ports.get(action["port"], action["port"])
    arguments = [kind, action.get("scheme", "HTTP"), str(port), action.get("path", "/")]
    return in_netns(pid, sys.executable, "-c", PROBE, *arguments, timeout=30).returncode == 0


def _site_pod(objects: list[dict[str, Any]], scratch: Path, prefix: str) -> SitePodBuilder:
    """The chart's receiver, web, federation and Airflow (migrations Job included) in one pod."""
    builder = SitePodBuilder(objects, scratch, prefix)
    index_env = {
        "OPENJIP_INDEX__BACKEND": "sqlite",
        "OPENJIP_INDEX__PATH": f"{INDEX_DIR}/index.sqlite3",
    }
    index_mount = [{"name": "test-index", "mountPath": INDEX_DIR}]
    builder.add("Job", "site-openjip-migrations")
    for component in ("receiver", "web"):
        builder.add(
            "Deployment",
            f"site-openjip-{component}",
            env={component: index_env},
            mounts={component: index_mount},
        )
    builder.add("Deployment", "site-openjip-federation")
    for component in AIRFLOW:
        builder.add("Deployment", f"site-openjip-airflow-{component}")
    builder.add_volume(
        {"name": "test-index", "persistentVolumeClaim": {"claimName": f"{prefix}-index"}},
        owner=(OPENJIP_UID, OPENJIP_UID),
    )
    return builder


# The first run on a machine builds the images (debootstrap and two pip installs, ~10 min).
@pytest.mark.timeout(2400)
def test_the_charts_containers_run_a_c_store_is_stored_and_starts_its_workflow(
    podman: Podman, image_values: dict[str, Any], tmp_path: Path, ct_phantom: list[Path]
) -> None:
    objects = render(image_values)
    secrets = secret_values(objects)
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    store_keys = (
        secrets[("site-openjip-store", "access-key")],
        secrets[("site-openjip-store", "secret-key")],
    )
    prefix = f"openjip-test-{uuid.uuid4().hex[:8]}"
    site = _site_pod(objects, tmp_path, prefix).build()
    for volume, owner in site.volumes.items():
        podman.create_volume(volume, owner)
    podman.play(site.playable(), tmp_path / "pod.yaml")
    pid = podman.netns_pid(site.name)
    services = NetnsServices(pid)
    try:
        services.start_s3(*store_keys)
        services.start_postgresql(
            values["postgresql"]["database"],
            values["postgresql"]["username"],
            secrets[("site-openjip-postgresql", "password")],
        )
        podman.start(site.name)
        _check_containers(podman, site.name, pid, site.manifest["spec"]["containers"])
        uid = _check_c_store(podman, pid, prefix, ct_phantom, store_keys)
        _check_run_started(pid, uid, secrets[("site-openjip-airflow", "admin-password")])
    except AssertionError as error:
        raise AssertionError(f"{error}\n{podman.report(site.name)}\n{services.logs()}") from error
    finally:
        services.stop()


def _check_containers(podman: Podman, pod: str, pid: int, containers: list[dict[str, Any]]) -> None:
    """Every container runs as the chart's user on a read-only root file system, becomes ready
    by its readiness probe (when it has one) and answers its liveness probe."""
    names = {c["name"] for c in containers}
    assert names == {"receiver-receiver", "web-web", "federation-federation"} | {
        f"airflow-{component}-{'api-server' if component == 'api' else component}"
        for component in AIRFLOW
    }
    for container in containers:
        name = f"{pod}-{container['name']}"
        ready = "readinessProbe" if "readinessProbe" in container else "livenessProbe"
        wait_until(
            lambda container=container, ready=ready: probe(podman, pod, pid, container, ready),
            300,
            f"{name} ready",
            interval=3,
        )
        assert probe(podman, pod, pid, container, "livenessProbe"), f"{name} not alive"
        inspected = podman.container(name)
        user = container["securityContext"]["runAsUser"]
        assert user != 0
        assert inspected["Config"]["User"] == f"{user}:{container['securityContext']['runAsGroup']}"
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True
        assert inspected["State"]["Running"] is True


def _check_c_store(
    podman: Podman, pid: int, prefix: str, files: list[Path], store_keys: tuple[str, str]
) -> str:
    """storescu into the receiver container: every instance indexed and in the object store;
    returns the SeriesInstanceUID."""
    sent = in_netns(
        pid,
        "/usr/bin/storescu", "-aec", "OPENJIP", "127.0.0.1", "11112",
        *map(str, files),
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr[-3000:]
    uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    index_file = podman.volume_path(f"{prefix}-index") / "index.sqlite3"
    index = open_index(Settings(index={"backend": "sqlite", "path": index_file}))
    try:
        instances = index.find_instances(Query(SeriesInstanceUID=[uid]))
    finally:
        index.close()
    assert len(instances) == len(files)
    listed = in_netns(
        pid,
        sys.executable,
        "-c",
        "import sys; from minio import Minio; "
        "client = Minio('127.0.0.1:9000', sys.argv[1], sys.argv[2], secure=False); "
        "print(sum(1 for _ in client.list_objects('openjip', prefix='dicom/', recursive=True)))",
        *store_keys,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert int(listed.stdout.strip()) == len(files)
    return uid


RUNS = """
import json, sys
from openjip.airflow.client import AirflowClient, AirflowError
client = AirflowClient("http://127.0.0.1:8080", "admin", sys.argv[1])
try:
    print(json.dumps([run["dag_run_id"] for run in client.runs("ct-body-mask")]))
except AirflowError as error:  # not parsed yet
    print(json.dumps([str(error)]))
"""


def _check_run_started(pid: int, uid: str, admin_password: str) -> None:
    """The receiver container's completed series started ct-body-mask in the chart's Airflow."""

    def runs() -> list[str]:
        answer = in_netns(pid, sys.executable, "-c", RUNS, admin_password, timeout=60)
        return json.loads(answer.stdout or "[]") if answer.returncode == 0 else []

    expected = f"openjip__{uid}__v1"
    found = wait_until(lambda: expected in runs() and runs(), 240, f"run {expected}", interval=5)
    assert found == [expected]
