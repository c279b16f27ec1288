"""What the podman tests play and check: the chart's receiver, web, federation and Airflow
containers (the migrations Job as init containers) in one pod (site_pod.py says how), played
with the S3 stand-in and PostgreSQL in its network namespace (netns_services.py); probes done as
the kubelet does them, a C-STORE with dcmtk's storescu into the receiver container, the runs it
starts in the chart's Airflow."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import yaml
from chart_processes import secret_values
from netns_services import NetnsServices, in_netns
from podman_engine import Podman, wait_until
from site_pod import SitePod, SitePodBuilder

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


def site_pod(objects: list[dict[str, Any]], scratch: Path, prefix: str) -> SitePodBuilder:
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


@dataclass
class RunningSite:
    """A site pod started by :func:`running_site`: the pod, its network namespace's process and
    the rendered Secrets' values."""

    site: SitePod
    pid: int
    secrets: dict[tuple[str, str], str]

    @property
    def store_keys(self) -> tuple[str, str]:
        """The chart's generated object store credentials (the S3 stand-in takes them)."""
        return (
            self.secrets[("site-openjip-store", "access-key")],
            self.secrets[("site-openjip-store", "secret-key")],
        )

    def container(self, name: str) -> str:
        """The podman name of the pod's container ``name`` (e.g. ``receiver-receiver``)."""
        return f"{self.site.name}-{name}"


@contextmanager
def running_site(
    podman: Podman,
    objects: list[dict[str, Any]],
    chart_values: Path,
    scratch: Path,
    prefix: str,
    *,
    services_root: Path | None = None,
    new_volumes: bool = True,
) -> Iterator[RunningSite]:
    """Play the rendered ``objects`` as one pod named ``prefix`` (volumes ``<prefix>-<claim>``,
    created first when ``new_volumes``), start the S3 stand-in and PostgreSQL in its network
    namespace (their data under ``services_root`` when given, kept for the next play; the
    database and user from ``chart_values``), then the pod; an AssertionError raised inside
    gets every container's state and log and the services' logs; the pod is stopped at the end."""
    scratch.mkdir(parents=True, exist_ok=True)
    site = site_pod(objects, scratch, prefix).build()
    if new_volumes:
        for volume, owner in site.volumes.items():
            podman.create_volume(volume, owner)
    podman.play(site.playable(), scratch / "pod.yaml")
    running = RunningSite(site, podman.netns_pid(site.name), secret_values(objects))
    values = yaml.safe_load(chart_values.read_text())
    services = NetnsServices(running.pid, services_root)
    try:
        services.start_s3(*running.store_keys)
        services.start_postgresql(
            values["postgresql"]["database"],
            values["postgresql"]["username"],
            running.secrets[("site-openjip-postgresql", "password")],
        )
        podman.start(site.name)
        yield running
    except AssertionError as error:
        raise AssertionError(f"{error}\n{podman.report(site.name)}\n{services.logs()}") from error
    finally:
        podman.stop(site.name)
        services.stop()


def check_containers(podman: Podman, pod: str, pid: int, containers: list[dict[str, Any]]) -> None:
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


def check_c_store(
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
    assert len(object_names(pid, store_keys)) == len(files)
    return uid


def object_names(pid: int, store_keys: tuple[str, str]) -> list[str]:
    """The DICOM objects in the site's bucket (the S3 stand-in), by name."""
    listed = in_netns(
        pid,
        sys.executable,
        "-c",
        "import json, sys; from minio import Minio; "
        "client = Minio('127.0.0.1:9000', sys.argv[1], sys.argv[2], secure=False); "
        "objects = client.list_objects('openjip', prefix='dicom/', recursive=True); "
        "print(json.dumps(sorted(o.object_name for o in objects)))",
        *store_keys,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    names: list[str] = json.loads(listed.stdout)
    return names


RUNS = """
import json, sys
from openjip.airflow.client import AirflowClient, AirflowError
client = AirflowClient("http://127.0.0.1:8080", "admin", sys.argv[1])
try:
    print(json.dumps([run["dag_run_id"] for run in client.runs("ct-body-mask")]))
except AirflowError as error:  # not parsed yet
    print(json.dumps([str(error)]))
"""


def check_run_started(
    pid: int, uid: str, admin_password: str, earlier: tuple[str, ...] = (), version: int = 1
) -> None:
    """The receiver container's completed series started ct-body-mask in the chart's Airflow
    (beside the ``earlier`` runs, which are still there); ``version``: of the series' run id."""

    def runs() -> list[str]:
        answer = in_netns(pid, sys.executable, "-c", RUNS, admin_password, timeout=60)
        return json.loads(answer.stdout or "[]") if answer.returncode == 0 else []

    expected = f"openjip__{uid}__v{version}"
    found = wait_until(lambda: expected in runs() and runs(), 240, f"run {expected}", interval=5)
    assert sorted(found) == sorted([expected, *earlier])
