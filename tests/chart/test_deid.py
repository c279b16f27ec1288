"""The de-identification secret and policies in the chart: one generated Secret (or the named
one), mounted read-only into the receiver and the web service, which de-identify by project
policy; its name given to Airflow for the steps that ask for it; never near the federation
service."""

from __future__ import annotations

import json
from typing import Any

from chart_objects import containers, find, pod_specs

SECRET = "site-openjip-deid"
MOUNT = "/var/run/secrets/openjip/deid"
POLICIES = {"research": {"on_ingest": True, "options": ["retain-longitudinal-modified-dates"]}}


def _pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return dict(pod_specs(objects))


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value") for item in container.get("env", [])}


def test_the_secret_is_generated_once_with_its_key(render_chart: Any) -> None:
    [secret] = find(render_chart(), "Secret", SECRET)
    assert set(secret["data"]) == {"deid.secret"}
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_receiver_and_web_read_it_as_a_file_with_the_policies(render_chart: Any) -> None:
    pods = _pods(render_chart({"deid": {"projects": POLICIES}}))
    for workload in ("Deployment/site-openjip-receiver", "Deployment/site-openjip-web"):
        pod = pods[workload]
        [volume] = [v for v in pod["volumes"] if v["name"] == "deid-secret"]
        assert volume["secret"]["secretName"] == SECRET
        assert volume["secret"]["defaultMode"] == 0o440  # group: the pod's fsGroup
        [container] = pod["containers"]
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "deid-secret"]
        assert mount == {"name": "deid-secret", "mountPath": MOUNT, "readOnly": True}
        env = _env(container)
        assert env["OPENJIP_DEID__SECRET_FILE"] == f"{MOUNT}/deid.secret"
        assert json.loads(env["OPENJIP_DEID__PROJECTS"]) == POLICIES


def test_only_its_name_reaches_airflow_and_nothing_the_federation_service(
    render_chart: Any,
) -> None:
    objects = render_chart()
    for where, pod in pod_specs(objects):
        volumes = pod.get("volumes", [])
        mounted = any(v.get("secret", {}).get("secretName") == SECRET for v in volumes)
        assert mounted == (
            where in {"Deployment/site-openjip-receiver", "Deployment/site-openjip-web"}
        ), where
        if "federation" in where:
            assert not any("DEID" in json.dumps(c.get("env", [])) for c in containers(pod))
    [scheduler] = [pod for where, pod in pod_specs(objects) if where.endswith("-scheduler")]
    assert _env(scheduler["containers"][0])["OPENJIP_DEID__SECRET_NAME"] == SECRET


def test_an_existing_secret_is_used_and_none_generated(render_chart: Any) -> None:
    objects = render_chart({"deid": {"existingSecret": "hospital-deid"}})
    assert not find(objects, "Secret", SECRET)
    receiver = _pods(objects)["Deployment/site-openjip-receiver"]
    [volume] = [v for v in receiver["volumes"] if v["name"] == "deid-secret"]
    assert volume["secret"]["secretName"] == "hospital-deid"
