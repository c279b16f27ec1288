"""The backup CronJob and the pre-upgrade hook: what they render, and the commands they run,
executed here as the pod would run them (the openjip containers' args and environment, Secrets
filled in, the in-cluster S3 address replaced by a real S3 server: SeaweedFS on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import helm_python
import pytest
from chart_objects import VALUE_SETS, find, merge

from openjip.config import Settings
from openjip.federation.exchange import Exchange
from openjip.phantom import write_ct_series
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


def run_container(
    container: dict[str, Any],
    secrets: dict[str, dict[str, str]],
    paths: dict[str, Path],
    s3: Any,
) -> subprocess.CompletedProcess[str]:
    """Run an openjip container's args with its environment, as the kubelet would."""
    env = {"PATH": os.environ["PATH"], "HOME": str(paths[HOME])}
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = secrets[ref["name"]][ref["key"]]
    # Where the cluster's names and mounts stand: the real S3 server and folders here.
    env["OPENJIP_HOME"] = str(paths[HOME])
    env["OPENJIP_STORAGE__S3_ENDPOINT"] = s3.endpoint
    if "OPENJIP_BACKUP__S3_ENDPOINT" in env:
        env["OPENJIP_BACKUP__S3_ENDPOINT"] = s3.endpoint
        env["OPENJIP_BACKUP__S3_SECURE"] = "false"
    args = [str(paths.get(arg, arg)) for arg in container["args"]]
    return subprocess.run(
        [str(OPENJIP), *args], env=env, capture_output=True, text=True, timeout=300
    )


def run_pod(pod: dict[str, Any], *context: Any) -> list[subprocess.CompletedProcess[str]]:
    """The openjip containers of the pod in order (init containers first); stop at a failure.

    Airflow's pg_dump init container runs the PostgreSQL image and is left out here."""
    done = []
    for container in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
        if "openjip/openjip" not in container["image"]:
            continue
        done.append(run_container(container, *context))
        if done[-1].returncode != 0:
            break
    return done


@pytest.fixture
def chart_site(tmp_path: Path, s3_server: Any) -> tuple[dict[str, dict[str, str]], dict[str, Path]]:
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
    return secrets, {HOME: home, BACKUP_VOLUME: tmp_path / "backup-volume", "bucket": Path(bucket)}


def site_values(name: str, paths: dict[str, Path]) -> dict[str, Any]:
    """A value set with the site's bucket, and a backup prefix of this test's own."""
    bucket = str(paths["bucket"])
    return merge(VALUE_SETS[name], {"bucket": bucket, "backup": {"s3": {"prefix": bucket}}})


def test_the_cronjob_command_backs_up_the_site_and_it_restores(
    render_chart: Any, chart_site: Any, s3_server: Any, tmp_path: Path
) -> None:
    secrets, paths = chart_site
    bucket = str(paths["bucket"])
    objects = render_chart(site_values("backups-to-own-s3", paths))
    (result,) = run_pod(
        pod_of(objects, "CronJob", "site-openjip-backup"), secrets, paths, s3_server
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"backup s3://site-backups/{bucket} on" in result.stdout

    restored = Settings(
        home=tmp_path / "restored", storage=s3_server.storage_settings(f"r-{bucket}")
    )
    restored.home_dir.mkdir()
    from openjip.state.backup import restore

    manifest = restore(restored, f"s3://site-backups/{bucket}")
    assert manifest["index"] == "opensearch"  # not copied: `openjip index rebuild` after restore
    assert sorted(i.key for i in open_store(restored).list("")) == sorted(
        i.key
        for i in open_store(
            Settings(home=paths[HOME], storage=s3_server.storage_settings(bucket))
        ).list("")
    )
    for name in ("federation/site.key", "federation/site.json", "workflows/ct-body-mask.yaml"):
        assert (restored.home_dir / name).read_bytes() == (paths[HOME] / name).read_bytes()


def run_hook(
    render_chart: Any, value_set: str, chart_site: Any, s3_server: Any
) -> list[subprocess.CompletedProcess[str]]:
    secrets, paths = chart_site
    (job,) = find(render_chart(site_values(value_set, paths)), "Job", "site-openjip-upgrade-check")
    return run_pod(job["spec"]["template"], secrets, paths, s3_server)


def test_the_hook_passes_on_a_site_it_can_open_and_backs_it_up(
    render_chart: Any, chart_site: Any, s3_server: Any
) -> None:
    check, backup = run_hook(render_chart, "backups-to-volume", chart_site, s3_server)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ok   federation: version 1, code 1" in check.stdout
    assert backup.returncode == 0, backup.stdout + backup.stderr
    paths = chart_site[1]
    manifest = json.loads((paths[BACKUP_VOLUME] / "manifest.json").read_text())
    assert sum(1 for name in manifest["files"] if name.startswith("objects/dicom/")) == 4


def test_the_hook_refuses_the_upgrade_on_state_of_a_newer_openjip(
    render_chart: Any, chart_site: Any, s3_server: Any
) -> None:
    paths = chart_site[1]
    versions = paths[HOME] / "state" / "versions.json"
    versions.write_text(json.dumps({**json.loads(versions.read_text()), "federation": 7}))
    (check,) = run_hook(render_chart, "backups-to-volume", chart_site, s3_server)
    assert check.returncode == 1
    assert "FAIL the federation state is at schema version 7, newer than version 1" in check.stdout
    assert not paths[BACKUP_VOLUME].exists()  # the pod stopped before its backup


def test_the_hook_refuses_the_upgrade_without_a_recent_backup(
    render_chart: Any, chart_site: Any, s3_server: Any
) -> None:
    secrets, paths = chart_site
    (check,) = run_hook(render_chart, "backups-to-own-s3", chart_site, s3_server)
    assert check.returncode == 1
    assert "FAIL no backup of this site recorded" in check.stdout
    # The CronJob's backup is recorded in the home the hook checks: then the hook passes.
    values = site_values("backups-to-own-s3", paths)
    cronjob = pod_of(render_chart(values), "CronJob", "site-openjip-backup")
    assert run_pod(cronjob, secrets, paths, s3_server)[-1].returncode == 0
    check, backup = run_hook(render_chart, "backups-to-own-s3", chart_site, s3_server)
    assert check.returncode == 0 and "newest backup 0.0 h old" in check.stdout
    assert backup.returncode == 0, backup.stdout + backup.stderr
