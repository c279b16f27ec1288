"""The pod of an analysis step in kubernetes mode, built by a real KubernetesPodOperator and
validated against the Kubernetes schemas with kubernetes-validate --strict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from openjip.config import Settings
from openjip.runner import StepRequest
from openjip.runner.grants import verify_grant
from openjip.runner.kubernetes import GRANT_ENV, WEB_URL_ENV, AnalysisPod
from openjip.workflows.spec import ResourcesSpec

KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]
GRANT_SECRET = "the-step-grant-key-of-this-test-0123456789"


def _request(**changes: Any) -> StepRequest:
    fields: dict[str, Any] = {
        "dag_id": "ct-body-mask",
        "run_id": "manual__2026-01-01T00:00:00+00:00",
        "step": "segment",
        "operator": "threshold-segmentation@0.1.0",
        "series_uids": ["1.2.3.4"],
        "params": {"target": "lungs"},
    }
    fields.update(changes)
    return StepRequest(**fields)


@pytest.fixture
def kubernetes_settings(openjip_home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("OPENJIP_MODE", "kubernetes")
    monkeypatch.setenv("OPENJIP_STORAGE__BACKEND", "s3")
    monkeypatch.setenv("OPENJIP_STORAGE__S3_ENDPOINT", "minio.openjip.svc:9000")
    monkeypatch.setenv("OPENJIP_STORAGE__S3_SECRET_KEY", "never-in-a-pod-spec")
    monkeypatch.setenv("OPENJIP_INDEX__BACKEND", "opensearch")
    monkeypatch.setenv("OPENJIP_INDEX__OPENSEARCH_PASSWORD", "never-in-a-pod-spec-either")
    monkeypatch.setenv("OPENJIP_ACCESS__STEP_TOKEN_SECRET", GRANT_SECRET)
    return Settings()


@pytest.fixture
def gpu_pod(kubernetes_settings: Settings) -> dict[str, Any]:
    request = _request(resources=ResourcesSpec(cpu="2", memory="8Gi", gpu=1))
    return AnalysisPod(kubernetes_settings).manifest(request)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_pod_validates_strictly(gpu_pod: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(gpu_pod, version, strict=True)


def test_pod_validates_with_the_cli(gpu_pod: dict[str, Any], tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(gpu_pod))
    cli = Path(sys.executable).with_name("kubernetes-validate")
    result = subprocess.run([str(cli), "--strict", str(manifest)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pod_runs_the_pinned_operator_image_with_the_step_resources(
    gpu_pod: dict[str, Any],
) -> None:
    spec = gpu_pod["spec"]
    fetch, step = spec["initContainers"]
    assert step["image"] == "ghcr.io/openjip/threshold-segmentation:0.1.0"
    assert step["command"] == ["python", "main.py"]
    assert step["resources"]["requests"] == {"cpu": "2", "memory": "8Gi"}
    assert step["resources"]["limits"] == {"memory": "8Gi", "nvidia.com/gpu": "1"}
    env = {item["name"]: item.get("value") for item in step["env"]}
    # The operator gets every param, defaults filled in, as a local run does.
    assert json.loads(env["OPENJIP_STEP_PARAMS"]) == {
        "target": "lungs",
        "body_threshold_hu": -500,
        "lung_threshold_hu": -400,
        "lung_components": 2,
        "fill_holes": True,
    }
    assert env["OPENJIP_OPERATOR"] == "threshold-segmentation@0.1.0"
    base = next(c for c in spec["containers"] if c["name"] == "base")
    assert base["command"][-1] == "publish" and fetch["command"][-1] == "fetch"


def test_pod_is_non_root_and_locked_down(gpu_pod: dict[str, Any]) -> None:
    spec = gpu_pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for container in spec["initContainers"] + [
        c for c in spec["containers"] if c["name"] == "base"
    ]:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}


def test_pod_gets_the_web_url_and_a_step_grant_but_no_store_or_index_credential(
    gpu_pod: dict[str, Any],
) -> None:
    base = next(c for c in gpu_pod["spec"]["containers"] if c["name"] == "base")
    env = {item["name"]: item for item in base["env"]}
    assert env[WEB_URL_ENV]["value"] == "http://openjip-web:8042"
    assert "never-in-a-pod-spec" not in json.dumps(gpu_pod)
    assert "secretKeyRef" not in json.dumps(gpu_pod)
    _, request = verify_grant(GRANT_SECRET, env[GRANT_ENV]["value"])
    assert request.series_uids == ["1.2.3.4"] and request.step == "segment"


def test_cpu_only_step_takes_the_operator_resources(kubernetes_settings: Settings) -> None:
    pod = AnalysisPod(kubernetes_settings).manifest(_request())
    step = pod["spec"]["initContainers"][1]
    assert step["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert "nvidia.com/gpu" not in step["resources"]["limits"]
    kubernetes_validate.validate(pod, KUBERNETES_VERSIONS[-1], strict=True)


def test_only_a_step_that_asks_for_it_gets_the_deid_secret_read_only(
    kubernetes_settings: Settings,
) -> None:
    request = _request(
        dag_id="deidentify-series", step="deidentify", operator="deidentify@0.1.0", params={}
    )
    pod = AnalysisPod(kubernetes_settings).manifest(request)
    kubernetes_validate.validate(pod, KUBERNETES_VERSIONS[-1], strict=True)
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "deid-secret"]
    assert volume["secret"]["secretName"] == "openjip-deid"
    assert volume["secret"]["defaultMode"] == 0o440
    fetch, step = pod["spec"]["initContainers"]
    [mount] = [m for m in step["volumeMounts"] if m["name"] == "deid-secret"]
    assert mount["readOnly"] is True
    env = {item["name"]: item["value"] for item in step["env"] if "value" in item}
    assert env["OPENJIP_DEID_SECRET_FILE"] == mount["mountPath"] + "/deid.secret"
    others = [fetch, *pod["spec"]["containers"]]
    assert not any(m["name"] == "deid-secret" for c in others for m in c["volumeMounts"])
    # A step that does not ask sees neither the volume nor the variable.
    plain = AnalysisPod(kubernetes_settings).manifest(_request())
    assert "deid-secret" not in json.dumps(plain)
    assert "OPENJIP_DEID_SECRET_FILE" not in json.dumps(plain)
