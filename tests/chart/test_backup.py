"""The backup CronJob and the pre-upgrade hook: what they render, and the commands they run,
executed here as the pod would run them (the openjip containers' args and environment, Secrets
filled in, the in-cluster S3 address replaced by a real S3 server: SeaweedFS on loopback, and
Airflow's database by Debian's PostgreSQL for the pg_dump init container)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import pytest
from chart_objects import VALUE_SETS, find, merge

from openjip.config import Settings
from openjip.federation.exchange import Exchange
from openjip.phantom import write_ct_series
from openjip.state.backup import restore
from openjip.storage import open_store

HOME, BACKUP_VOLUME = "/var/lib/openjip", "/var/lib/openjip-backup"
OPENJIP = Path(sys.executable).with_name("openjip")


def pod_of(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (workload,) = find(objects, kind, name)
    spec = workload["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else workload["spec"]
    pod: dict[str, Any] = spec["template"]
    return pod


def test_no_backup_cronjob_unless_enabled(render_chart: Any) -> None:
    assert find(render_chart(), "CronJob") == []


def test_the_cronjob_backs_up_to_the_bucket_and_prefix_of_its_own_s3_server(
    render_chart: Any,
) -> None:
    objects = render_chart(VALUE_SETS["backups-to-own-s3"])
    (cronjob,) = find(objects, "CronJob", "site-openjip-backup")
    assert cronjob["spec"]["schedule"] == "30 1 * * *"
    assert cronjob["spec"]["timeZone"] == "Europe/Berlin"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = pod_of(objects, "CronJob", "site-openjip-backup")
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["site", "backup", "s3://site-backups/hospital-a/openjip"]
    env = {e["name"]: e for e in container["env"]}
    assert env["OPENJIP_BACKUP__S3_ENDPOINT"]["value"] == "backup.hospital.example:9443"
    assert env["OPENJIP_BACKUP__S3_SECURE"]["value"] == "true"
    assert env["OPENJIP_BACKUP__S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "backup-s3",
        "key": "secret-key",
    }
    # Airflow's database is dumped first, into the home the backup copies.
    (dump,) = pod["spec"]["initContainers"]
    assert dump["command"][0] == "pg_dump" and dump["command"][-1].startswith(f"--file={HOME}/")
    labels = pod["metadata"]["labels"]
    assert {"openjip.io/store-client", "openjip.io/db-client", "openjip.io/backup-client"} <= set(
        labels
    )
    assert pod["spec"]["serviceAccountName"] == "site-openjip-backup"
    assert find(objects, "ServiceAccount", "site-openjip-backup")
    (policy,) = find(objects, "NetworkPolicy", "site-openjip-np-backup")
    (rule,) = policy["spec"]["egress"]
    assert rule == {
        "to": [{"ipBlock": {"cidr": "192.168.50.0/24"}}],
        "ports": [{"protocol": "TCP", "port": 9443}],
    }


def test_the_backup_pod_runs_beside_the_federation_pod_whose_volume_it_reads(
    render_chart: Any,
) -> None:
    pod = pod_of(render_chart(VALUE_SETS["backups-to-volume"]), "CronJob", "site-openjip-backup")
    (term,) = pod["spec"]["affinity"]["podAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "federation"
    claims = {
        v["name"]: v.get("persistentVolumeClaim", {}).get("claimName")
        for v in pod["spec"]["volumes"]
    }
    assert claims["state"] == "site-openjip-federation-state"
    assert claims["backups"] == "site-openjip-backups"


def test_a_backup_volume_is_a_claim_kept_on_uninstall(render_chart: Any) -> None:
    objects = render_chart(VALUE_SETS["backups-to-volume"])
    (claim,) = find(objects, "PersistentVolumeClaim", "site-openjip-backups")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    (container,) = pod_of(objects, "CronJob", "site-openjip-backup")["spec"]["containers"]
    assert container["args"] == ["site", "backup", BACKUP_VOLUME]
    own = merge(VALUE_SETS["backups-to-volume"], {"backup": {"volume": {"existingClaim": "nas"}}})
    assert not find(render_chart(own), "PersistentVolumeClaim", "site-openjip-backups")


def test_the_pre_upgrade_hook_checks_then_backs_up_and_never_retries(render_chart: Any) -> None:
    objects = render_chart(VALUE_SETS["backups-to-own-s3"])
    (job,) = find(objects, "Job", "site-openjip-upgrade-check")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    assert job["spec"]["backoffLimit"] == 0
    spec = job["spec"]["template"]["spec"]
    check, dump = spec["initContainers"]
    assert check["args"] == [
        "site",
        "check",
        "--min-free-mib",
        "100",
        "--max-backup-age-hours",
        "24",
    ]
    assert dump["name"] == "airflow-db-dump"
    (backup,) = spec["containers"]
    assert backup["args"] == ["site", "backup", "s3://site-backups/hospital-a/openjip"]
    # Its account and policy are hooks of a lower weight: the first upgrade to this chart
    # version has neither in the release yet.
    for kind, name in [
        ("ServiceAccount", "site-openjip-upgrade-check"),
        ("NetworkPolicy", "site-openjip-np-upgrade-check"),
    ]:
        (obj,) = find(objects, kind, name)
        annotations = obj["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-upgrade"
        assert int(annotations["helm.sh/hook-weight"]) < 0


def test_without_backups_the_hook_only_checks(render_chart: Any) -> None:
    (job,) = find(render_chart(), "Job", "site-openjip-upgrade-check")
    spec = job["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    (check,) = spec["containers"]
    assert check["args"] == ["site", "check", "--min-free-mib", "100"]
    assert not any(e["name"].startswith("OPENJIP_STORAGE") for e in check["env"])
    off = render_chart({"upgradeCheck": {"enabled": False}})
    assert not find(off, "Job", "site-openjip-upgrade-check")


def test_a_backup_into_the_sites_own_bucket_fails_the_render(chart: helm_python.Chart) -> None:
    values = {"backup": {"enabled": True, "s3": {"bucket": "openjip"}}}
    with pytest.raises(helm_python.HelmRenderError, match=r"backup\.s3\.bucket must differ"):
        chart.render(values, name="site", namespace="openjip")


# -- the commands, run ------------------------------------------------------------------------


@dataclass
class StandIns:
    """What stands here for the cluster: Secrets' values, the mounts' folders, the real S3
    server for the in-cluster names, and a PostgreSQL (host, port) when one runs."""

    secrets: dict[str, dict[str, str]]
    paths: dict[str, Path]
    s3: Any
    database: tuple[str, int] | None = None

    def local(self, text: str) -> str:
        """``text`` with each mount point replaced by its folder here (longest first)."""
        for mount in sorted((m for m in self.paths if m.startswith("/")), key=len, reverse=True):
            if text == mount or text.startswith(mount + "/") or "=" + mount in text:
                return text.replace(mount, str(self.paths[mount]))
        return text


def run_container(
    container: dict[str, Any], stand_ins: StandIns
) -> subprocess.CompletedProcess[str]:
    """Run a container's command (an openjip one: its args) with its environment, as the
    kubelet would, on this machine."""
    env = {"PATH": os.environ["PATH"], "HOME": str(stand_ins.paths[HOME])}
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = stand_ins.secrets[ref["name"]][ref["key"]]
    env["OPENJIP_HOME"] = stand_ins.local(HOME)
    env["OPENJIP_STORAGE__S3_ENDPOINT"] = stand_ins.s3.endpoint
    if "OPENJIP_BACKUP__S3_ENDPOINT" in env:
        env["OPENJIP_BACKUP__S3_ENDPOINT"] = stand_ins.s3.endpoint
        env["OPENJIP_BACKUP__S3_SECURE"] = "false"
    if stand_ins.database is not None and "PGHOST" in env:
        env["PGHOST"], port = stand_ins.database
        env["PGPORT"] = str(port)
    for mount in container["volumeMounts"]:  # the kubelet makes every mount point
        Path(stand_ins.local(mount["mountPath"])).mkdir(parents=True, exist_ok=True)
    command = container.get("command") or [str(OPENJIP), *container["args"]]
    return subprocess.run(
        [stand_ins.local(part) for part in command],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_pod(pod: dict[str, Any], stand_ins: StandIns) -> list[subprocess.CompletedProcess[str]]:
    """The pod's containers in order (init containers first), stopping at a failure. Airflow's
    pg_dump init container runs only when a PostgreSQL stands in for the database."""
    done = []
    for container in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
        if "postgres" in container["image"] and stand_ins.database is None:
            continue
        done.append(run_container(container, stand_ins))
        if done[-1].returncode != 0:
            break
    return done


@pytest.fixture
def chart_site(tmp_path: Path, s3_server: Any) -> StandIns:
    """A site as the chart keeps it: objects in the S3 bucket, identity and specs in the home."""
    home = tmp_path / "home"
    (home / "workflows").mkdir(parents=True)
    (home / "workflows" / "ct-body-mask.yaml").write_text("id: ct-body-mask\n")
    bucket = f"site-{uuid.uuid4().hex[:10]}"
    storage = s3_server.storage_settings(bucket)
    settings = Settings(home=home, mode="kubernetes", storage=storage)
    Exchange(home, settings.federation).init("site-a")
    store = open_store(settings)
    for path in write_ct_series(tmp_path / "ct", slices=4, rows=16, columns=16):
        store.put_file(f"dicom/1.2/3.4/{path.stem}.dcm", path)
    secrets = {
        "site-openjip-store": {
            "access-key": s3_server.access_key,
            "secret-key": s3_server.secret_key,
        },
        "backup-s3": {"access-key": s3_server.access_key, "secret-key": s3_server.secret_key},
    }
    paths = {HOME: home, BACKUP_VOLUME: tmp_path / "backup-volume", "bucket": Path(bucket)}
    return StandIns(secrets, paths, s3_server)


def site_values(name: str, site: StandIns) -> dict[str, Any]:
    """A value set with the site's bucket, and a backup prefix of this test's own."""
    bucket = str(site.paths["bucket"])
    return merge(VALUE_SETS[name], {"bucket": bucket, "backup": {"s3": {"prefix": bucket}}})


def objects_of(site: StandIns, bucket: str) -> list[str]:
    settings = Settings(home=site.paths[HOME], storage=site.s3.storage_settings(bucket))
    return sorted(info.key for info in open_store(settings).list(""))


def test_the_cronjob_command_backs_up_the_site_and_it_restores(
    render_chart: Any, chart_site: StandIns, tmp_path: Path
) -> None:
    site = chart_site
    bucket = str(site.paths["bucket"])
    objects = render_chart(site_values("backups-to-own-s3", site))
    (result,) = run_pod(pod_of(objects, "CronJob", "site-openjip-backup"), site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"backup s3://site-backups/{bucket} on" in result.stdout

    storage = site.s3.storage_settings(f"r-{bucket}")
    restored = Settings(home=tmp_path / "restored", storage=storage)
    restored.home_dir.mkdir()
    manifest = restore(restored, f"s3://site-backups/{bucket}")
    assert manifest["index"] == "opensearch"  # not copied: `openjip index rebuild` after restore
    assert objects_of(site, f"r-{bucket}") == objects_of(site, bucket) != []
    for name in ("federation/site.key", "federation/site.json", "workflows/ct-body-mask.yaml"):
        assert (restored.home_dir / name).read_bytes() == (site.paths[HOME] / name).read_bytes()


def run_hook(
    render_chart: Any, value_set: str, site: StandIns
) -> list[subprocess.CompletedProcess[str]]:
    (job,) = find(render_chart(site_values(value_set, site)), "Job", "site-openjip-upgrade-check")
    return run_pod(job["spec"]["template"], site)


def test_the_hook_passes_on_a_site_it_can_open_and_backs_it_up(
    render_chart: Any, chart_site: StandIns
) -> None:
    check, backup = run_hook(render_chart, "backups-to-volume", chart_site)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ok   federation: version 1, code 1" in check.stdout
    assert "ok   index: OpenSearch; a service refuses a newer openjip's templates" in check.stdout
    assert backup.returncode == 0, backup.stdout + backup.stderr
    manifest = json.loads((chart_site.paths[BACKUP_VOLUME] / "manifest.json").read_text())
    assert sum(1 for name in manifest["files"] if name.startswith("objects/dicom/")) == 4


def test_the_hook_refuses_the_upgrade_on_state_of_a_newer_openjip(
    render_chart: Any, chart_site: StandIns
) -> None:
    versions = chart_site.paths[HOME] / "state" / "versions.json"
    versions.write_text(json.dumps({**json.loads(versions.read_text()), "federation": 7}))
    (check,) = run_hook(render_chart, "backups-to-volume", chart_site)
    assert check.returncode == 1
    assert "FAIL the federation state is at schema version 7, newer than version 1" in check.stdout
    # The pod stopped before its backup.
    assert not (chart_site.paths[BACKUP_VOLUME] / "manifest.json").exists()


def test_the_hook_refuses_the_upgrade_without_a_recent_backup(
    render_chart: Any, chart_site: StandIns
) -> None:
    (check,) = run_hook(render_chart, "backups-to-own-s3", chart_site)
    assert check.returncode == 1
    assert "FAIL no backup of this site recorded" in check.stdout
    # The CronJob's backup is recorded in the home the hook checks: then the hook passes.
    values = site_values("backups-to-own-s3", chart_site)
    cronjob = pod_of(render_chart(values), "CronJob", "site-openjip-backup")
    assert run_pod(cronjob, chart_site)[-1].returncode == 0
    check, backup = run_hook(render_chart, "backups-to-own-s3", chart_site)
    assert check.returncode == 0 and "newest backup 0.0 h old" in check.stdout
    assert backup.returncode == 0, backup.stdout + backup.stderr


# -- Airflow's database: the pg_dump init container against a real PostgreSQL -----------------


@pytest.fixture
def postgresql() -> Iterator[tuple[str, int, str]]:
    """Debian's PostgreSQL on a free loopback port, as the ``postgres`` user, with the chart's
    database and user (``airflow``) and a table of runs standing in for Airflow's metadata.
    Its data lives outside pytest's folders, which the ``postgres`` user cannot enter."""
    [binaries] = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:]
    root = Path(tempfile.mkdtemp(prefix="openjip-pg-"))
    root.chmod(0o711)
    data = root / "pg"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def as_postgres(program: str, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", f"{binaries}/{program}", *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    options = "-U postgres --auth-local=trust --auth-host=scram-sha-256"
    as_postgres("pg_ctl", "init", "-D", str(data), "-o", options)
    server = f"-p {port} -c listen_addresses=127.0.0.1 -k {data}"
    as_postgres("pg_ctl", "start", "--wait", "-D", str(data), "-l", f"{data}/log", "-o", server)
    try:
        psql = ("-h", str(data), "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1")
        password = uuid.uuid4().hex
        as_postgres("psql", *psql, "-c", f"CREATE ROLE airflow LOGIN PASSWORD '{password}'")
        as_postgres("psql", *psql, "-c", "CREATE DATABASE airflow OWNER airflow")
        as_postgres(
            "psql", *psql, "-d", "airflow", "-c", "SET ROLE airflow; CREATE TABLE dag_run"
            " (dag_id text, run_id text); INSERT INTO dag_run VALUES ('ct-body-mask', 'r1')",
        )  # fmt: skip
        yield "127.0.0.1", port, password
    finally:
        as_postgres("pg_ctl", "stop", "-D", str(data), "-m", "fast")
        shutil.rmtree(root, ignore_errors=True)


def test_the_cronjob_dumps_airflows_database_into_the_backup(
    render_chart: Any, chart_site: StandIns, postgresql: tuple[str, int, str], tmp_path: Path
) -> None:
    host, port, password = postgresql
    chart_site.database = (host, port)
    chart_site.secrets["site-openjip-postgresql"] = {"password": password}
    objects = render_chart(site_values("backups-to-volume", chart_site))
    dump, backup = run_pod(pod_of(objects, "CronJob", "site-openjip-backup"), chart_site)
    assert dump.returncode == 0, dump.stderr
    assert backup.returncode == 0, backup.stdout + backup.stderr
    manifest = json.loads((chart_site.paths[BACKUP_VOLUME] / "manifest.json").read_text())
    assert "home/airflow/airflow-db.pgdump" in manifest["files"]
    restored = Settings(home=tmp_path / "restored", storage=chart_site.s3.storage_settings("r-pg"))
    restored.home_dir.mkdir()
    restore(restored, chart_site.paths[BACKUP_VOLUME])
    listing = subprocess.run(
        ["/usr/bin/pg_restore", "--list", str(restored.home_dir / "airflow" / "airflow-db.pgdump")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "TABLE public dag_run airflow" in listing.stdout
    assert "TABLE DATA public dag_run airflow" in listing.stdout
