"""The chart upgraded and rolled back with data, played with ``podman kube play`` on the same
named volumes (and the same S3 stand-in and PostgreSQL data): the previous release's chart
(0.1.0, ``git archive`` of its commit) rendered with the same values ingests a CT series (dcmtk's
storescu) and starts its workflow in Airflow (0.1.0's trigger code run in its receiver container:
its chart receiver started none on arrival); the current chart, rendered with the Secrets the
first render generated (what the chart's ``lookup`` keeps in a cluster), finds that series in
the migrated index, keeps its objects, its Airflow run and the site's federation identity, and
ingests a new series that starts its run; the previous chart played again (a rollback re-applies
the old revision, Secrets included) runs its federation service on the migrated state and its
receiver refuses the migrated index, naming both versions, without changing it.

The previous version's images are the current ones with the old source tree (``src/openjip``,
``dags``, ``operators`` of the old commit) in place of the current one: same base, Python
packages at the versions the current metadata resolves (the old code's dependencies are a
subset), no Airflow plugin (0.1.0 had none). Stand-ins and what is not exercised: as in
test_kube_play.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from chart_processes import CHART_DIR, REPO, render
from netns_services import in_netns
from podman_engine import Podman, wait_until
from site_checks import (
    RunningSite,
    check_containers,
    check_run_started,
    object_names,
    probe,
    running_site,
)

from openjip.phantom import write_ct_series

PREVIOUS_COMMIT = "14f6e6bd4f8c593031ee6c169d05e646e69ec19f"
PREVIOUS_VERSION = "0.1.0"
REFUSAL = "index schema version 2, this openjip uses 1"
IMAGE_USERS = {"openjip": "10001:10001", "airflow": "50000:50000"}

PREVIOUS_IMAGE = """\
FROM {image}
USER root
RUN rm -rf /opt/openjip/src /opt/openjip/dags /opt/openjip/operators \\
 && rm -f /opt/openjip/plugins/openjip_plugin.py
COPY src/openjip /opt/openjip/src/openjip
COPY dags /opt/openjip/dags
COPY operators /opt/openjip/operators
RUN python -m compileall -q /opt/openjip/src && chmod -R u+rwX,go+rX,go-w /opt/openjip
USER {user}
"""

INSTANCES = """
import sys
from openjip.config import Settings
from openjip.index import Query, open_index
index = open_index(Settings())
print(len(index.find_instances(Query(SeriesInstanceUID=[sys.argv[1]]))))
index.close()
"""

# 0.1.0's chart receiver (`openjip receiver`) starts no workflows on series arrival (only its
# `openjip site up` wired the hook): its own trigger hook, run in its receiver container, starts
# the run of the series as its local site would.
TRIGGER = """
import sys, time
from openjip.airflow.triggers import SeriesTriggerHook
from openjip.config import Settings
from openjip.index import Query, open_index
settings = Settings()
[series] = open_index(settings).find_series(Query(SeriesInstanceUID=[sys.argv[1]]))
hook = SeriesTriggerHook(settings)
hook(series)
for attempt in range(120):
    if not hook.queue.pending():
        break
    time.sleep(2)
hook.stop()
sys.exit(len(hook.queue.pending()))
"""

SITE = """
import ssl, sys, urllib.request
url = f"{sys.argv[1].lower()}://127.0.0.1:{sys.argv[2]}/v1/site"
context = ssl._create_unverified_context()
print(urllib.request.urlopen(url, timeout=5, context=context).read().decode())
"""


@pytest.fixture(scope="module")
def previous(image_values: dict[str, Any]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The previous release's chart folder and the values naming its images (built here)."""
    source = Path(tempfile.mkdtemp(prefix="openjip-previous-"))
    try:
        archive = subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "archive",
                PREVIOUS_COMMIT,
                "charts",
                "src",
                "dags",
                "operators",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
        tag = f"{image_values['images']['openjip']['tag']}-previous"
        for name, user in IMAGE_USERS.items():
            current = f"ghcr.io/openjip/{name}:{image_values['images'][name]['tag']}"
            (source / "Containerfile").write_text(PREVIOUS_IMAGE.format(image=current, user=user))
            subprocess.run(
                ["podman", "build", "--runtime", "runc", "--pull=never", "--quiet",
                 "-f", str(source / "Containerfile"), "-t",
                 f"ghcr.io/openjip/{name}:{tag}", str(source)],
                check=True, capture_output=True, timeout=900,
            )  # fmt: skip
        tags = {name: {"tag": tag} for name in IMAGE_USERS}
        yield source / "charts" / "openjip", {"images": tags}
    finally:
        shutil.rmtree(source, ignore_errors=True)


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> list[list[Path]]:
    """Three small CT series of one patient (one per version played)."""
    root = tmp_path_factory.mktemp("upgrade-series")
    return [
        write_ct_series(root / str(number), slices=24, rows=128, columns=128, series_number=number)
        for number in (1, 2, 3)
    ]


def keep_secrets(objects: list[dict[str, Any]], earlier: list[dict[str, Any]]) -> None:
    """What the chart's ``lookup`` does on an upgrade in a cluster: a key the release's existing
    Secret holds keeps its value; keys new in this version keep their fresh one."""
    existing = {
        item["metadata"]["name"]: item.get("data") or {}
        for item in earlier
        if item["kind"] == "Secret"
    }
    for item in objects:
        if item["kind"] == "Secret" and item.get("data"):
            kept = existing.get(item["metadata"]["name"], {})
            item["data"] = {key: kept.get(key, value) for key, value in item["data"].items()}


def _store(site: RunningSite, files: list[Path]) -> subprocess.CompletedProcess[str]:
    return in_netns(
        site.pid,
        "/usr/bin/storescu", "-aec", "OPENJIP", "127.0.0.1", "11112",
        *map(str, files),
    )  # fmt: skip


def _ingest(podman: Podman, site: RunningSite, files: list[Path]) -> str:
    """storescu into the receiver container; the version's own index (queried in the receiver
    container) has every instance; returns the SeriesInstanceUID."""
    sent = _store(site, files)
    assert sent.returncode == 0, sent.stderr[-3000:]
    uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    assert _indexed(podman, site, uid) == len(files)
    return uid


def _indexed(podman: Podman, site: RunningSite, uid: str) -> int:
    """How many instances of series ``uid`` the receiver container's own code finds."""
    found = podman.exec(site.container("receiver-receiver"), "python", "-c", INSTANCES, uid)
    assert found.returncode == 0, found.stderr[-3000:]
    return int(found.stdout.strip())


def _identity(site: RunningSite) -> dict[str, str]:
    """The federation container's public identity (``GET /v1/site``)."""
    [federation] = [
        c for c in site.site.manifest["spec"]["containers"] if c["name"] == "federation-federation"
    ]
    probe = federation["readinessProbe"]["httpGet"]
    ports = {port["name"]: port["containerPort"] for port in federation["ports"]}
    scheme, port = probe.get("scheme", "HTTP"), ports.get(probe["port"], probe["port"])
    answer = in_netns(site.pid, sys.executable, "-c", SITE, scheme, str(port))
    assert answer.returncode == 0, answer.stderr[-3000:]
    identity: dict[str, str] = json.loads(answer.stdout)
    return identity


def _ready(podman: Podman, site: RunningSite) -> None:
    check_containers(podman, site.site.name, site.pid, site.site.manifest["spec"]["containers"])


def _wait_ready(podman: Podman, site: RunningSite, name: str) -> None:
    """Wait for the container ``name``'s readiness probe (of the previous chart's containers,
    which start on the migrated state)."""
    [container] = [c for c in site.site.manifest["spec"]["containers"] if c["name"] == name]
    which = "readinessProbe" if "readinessProbe" in container else "livenessProbe"
    wait_until(
        lambda: probe(podman, site.site.name, site.pid, container, which),
        300,
        f"{name} ready",
        interval=3,
    )


def _index_file(podman: Podman, prefix: str) -> Path:
    return podman.volume_path(f"{prefix}-index") / "index.sqlite3"


def _schema_version(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


# Three plays of the whole site (~3 min each with the images built).
@pytest.mark.timeout(2400)
def test_previous_chart_upgrades_with_its_data_and_a_rollback_refuses_the_migrated_index(
    podman: Podman,
    image_values: dict[str, Any],
    previous: tuple[Path, dict[str, Any]],
    series: list[list[Path]],
    tmp_path: Path,
) -> None:
    previous_chart, previous_values = previous
    old = render(previous_values, previous_chart)
    new = render(image_values)
    keep_secrets(new, old)
    prefix = f"openjip-upgrade-{uuid.uuid4().hex[:8]}"
    services = Path(tempfile.mkdtemp(prefix="openjip-upgrade-", dir="/var/tmp"))
    password = ("site-openjip-airflow", "admin-password")
    try:
        # The previous release: a series ingested, its run started.
        with running_site(
            podman, old, previous_chart / "values.yaml", tmp_path / "previous", prefix,
            services_root=services,
        ) as site:  # fmt: skip
            _ready(podman, site)
            first = _ingest(podman, site, series[0])
            started = podman.exec(
                site.container("receiver-receiver"), "python", "-c", TRIGGER, first, timeout=300
            )
            assert started.returncode == 0, started.stderr[-3000:]
            # The trigger hook outside the receiver's completion sweep: series version 0.
            check_run_started(site.pid, first, site.secrets[password], version=0)
            objects = object_names(site.pid, site.store_keys)
            identity = _identity(site)
        assert len(objects) == len(series[0])
        assert _schema_version(_index_file(podman, prefix)) == 1

        # The upgrade: everything still there, the index migrated, a new series ingested.
        with running_site(
            podman, new, CHART_DIR / "values.yaml", tmp_path / "current", prefix,
            services_root=services, new_volumes=False,
        ) as site:  # fmt: skip
            _ready(podman, site)
            assert _indexed(podman, site, first) == len(series[0])
            assert object_names(site.pid, site.store_keys) == objects
            assert _identity(site) == identity
            second = _ingest(podman, site, series[1])
            upgraded = object_names(site.pid, site.store_keys)
            assert len(upgraded) == len(objects) + len(series[1])
            # The current receiver's start recovers the run of a recent series that has none in
            # its own trigger queue: the series 0.1.0 received gets a run of version 1 too.
            earlier = (f"openjip__{first}__v0", f"openjip__{first}__v1")
            check_run_started(site.pid, second, site.secrets[password], earlier=earlier)
        index_file = _index_file(podman, prefix)
        assert _schema_version(index_file) == 2
        migrated = hashlib.sha256(index_file.read_bytes()).hexdigest()

        # The rollback: the previous chart (the same rendered revision) again.
        with running_site(
            podman, old, previous_chart / "values.yaml", tmp_path / "rollback", prefix,
            services_root=services, new_volumes=False,
        ) as site:  # fmt: skip
            _wait_ready(podman, site, "federation-federation")
            assert _identity(site) == identity
            _wait_ready(podman, site, "receiver-receiver")
            refused = _store(site, series[2])
            log = podman.logs(site.container("receiver-receiver"), tail=400)
            assert f"refused with 0xA700: index unavailable: {REFUSAL}" in log, (
                f"{refused.stdout}{refused.stderr}"
            )
            # Nothing stored before is gone (0.1.0 may leave the unindexed object of a refused
            # instance: its Ingestor keeps an object whose index write failed).
            assert set(upgraded) <= set(object_names(site.pid, site.store_keys))
        assert hashlib.sha256(index_file.read_bytes()).hexdigest() == migrated
    finally:
        shutil.rmtree(services, ignore_errors=True)
