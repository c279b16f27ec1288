"""Upgrade safety: what holds data keeps its name, selector and claims; PVCs survive uninstall.

tests/chart/stateful_identities.json records the chart's stateful identities. A change that would
orphan data (a renamed StatefulSet, PVC, Service or Secret, a new selector or claim template)
fails here. To make such a change on purpose: bump the chart version, write an upgrade note
"### Upgrading to <version>" in docs/site-operators.md, then rewrite the record with
`UPDATE_STATEFUL_IDENTITIES=1 .venv/bin/pytest tests/chart/test_upgrade_safety.py` (that run
still fails, so an update is never silent) and commit all three together.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
import yaml
from chart_objects import CHART_DIR, REPO, VALUE_SETS, find

RECORD = CHART_DIR.parents[1] / "tests" / "chart" / "stateful_identities.json"
DOCS = REPO / "docs" / "site-operators.md"
KEEP = {"helm.sh/resource-policy": "keep"}


def chart_version() -> str:
    return str(yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["version"])


def stateful_identities(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The names and shapes Kubernetes ties stored data to."""
    return {
        "statefulSets": {
            sts["metadata"]["name"]: {
                "serviceName": sts["spec"]["serviceName"],
                "selector": sts["spec"]["selector"],
                "volumeClaimTemplates": [
                    {
                        "name": claim["metadata"]["name"],
                        "labels": claim["metadata"].get("labels", {}),
                        "accessModes": claim["spec"]["accessModes"],
                    }
                    for claim in sts["spec"]["volumeClaimTemplates"]
                ],
            }
            for sts in find(objects, "StatefulSet")
        },
        "persistentVolumeClaims": sorted(
            pvc["metadata"]["name"] for pvc in find(objects, "PersistentVolumeClaim")
        ),
        "services": sorted(service["metadata"]["name"] for service in find(objects, "Service")),
        "secrets": sorted(secret["metadata"]["name"] for secret in find(objects, "Secret")),
        "deploymentSelectors": {
            deployment["metadata"]["name"]: deployment["spec"]["selector"]
            for deployment in find(objects, "Deployment")
        },
    }


def test_stateful_identities_match_the_record(render_chart: Any) -> None:
    fresh = stateful_identities(render_chart())
    if os.environ.get("UPDATE_STATEFUL_IDENTITIES"):
        previous = json.loads(RECORD.read_text()) if RECORD.exists() else {}
        changed = previous.get("identities") != fresh
        if changed and previous.get("chart_version") == chart_version():
            pytest.fail("stateful identities changed: bump the chart version in Chart.yaml first")
        if changed:
            record = {"chart_version": chart_version(), "identities": fresh}
            RECORD.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        pytest.fail(f"{RECORD.name} rewritten; unset UPDATE_STATEFUL_IDENTITIES and rerun")
    record = json.loads(RECORD.read_text())
    assert fresh == record["identities"], (
        "the chart's stateful identities changed: an upgrade would orphan data. "
        "Revert, or follow the steps in this module's docstring."
    )


def test_the_record_has_an_upgrade_note_in_the_docs() -> None:
    version = json.loads(RECORD.read_text())["chart_version"]
    text = DOCS.read_text()
    assert re.search(rf"^### Upgrading to {re.escape(version)}\b", text, re.MULTILINE), (
        f"docs/site-operators.md needs a section '### Upgrading to {version}'"
    )


def test_every_value_set_keeps_the_default_identities(render_chart: Any) -> None:
    """Switching executors or exposure must not rename what holds data."""
    default = stateful_identities(render_chart())
    # The mirror brings its own certificate Secret instead of the generated one.
    brought = {"air-gapped-mirror": {"site-openjip-federation-tls"}}
    for name in ("kubernetes-executor", "loadbalancer-receiver", "air-gapped-mirror"):
        other = stateful_identities(render_chart(VALUE_SETS[name]))
        assert other["statefulSets"] == default["statefulSets"], name
        assert other["persistentVolumeClaims"] == default["persistentVolumeClaims"], name
        expected = [s for s in default["secrets"] if s not in brought.get(name, set())]
        assert other["secrets"] == expected, name


def test_every_claim_is_kept_on_uninstall(render_chart: Any, value_set: Any) -> None:
    _, values = value_set
    objects = render_chart(values)
    for pvc in find(objects, "PersistentVolumeClaim"):
        assert pvc["metadata"]["annotations"].items() >= KEEP.items(), pvc["metadata"]["name"]
    for sts in find(objects, "StatefulSet"):
        retention = sts["spec"]["persistentVolumeClaimRetentionPolicy"]
        assert retention == {"whenDeleted": "Retain", "whenScaled": "Retain"}
        for claim in sts["spec"]["volumeClaimTemplates"]:
            assert claim["metadata"]["annotations"].items() >= KEEP.items()


def test_generated_secrets_are_kept_on_uninstall(render_chart: Any) -> None:
    secrets = find(render_chart(), "Secret")
    assert len(secrets) == 7
    for secret in secrets:
        assert secret["metadata"]["annotations"].items() >= KEEP.items()


def test_stateful_sets_have_one_identity_per_store(render_chart: Any) -> None:
    names = {sts["metadata"]["name"] for sts in find(render_chart(), "StatefulSet")}
    assert names == {"site-openjip-minio", "site-openjip-opensearch", "site-openjip-postgresql"}
