"""Security by default: resources, non-root, read-only roots, pinned images, scoped RBAC."""

from __future__ import annotations

from typing import Any

import pytest
from chart_objects import VALUE_SETS, containers, embedded_pods, find, pod_specs

# Containers that must write below their install folder (OpenSearch's keystore and logs).
WRITABLE_ROOT = {"opensearch"}


def all_containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict]]:
    return [(where, pod, c) for where, pod in pod_specs(objects) for c in containers(pod)]


def test_every_container_has_requests_and_limits(render_chart: Any, value_set: Any) -> None:
    _, values = value_set
    for where, _, container in all_containers(render_chart(values)):
        resources = container.get("resources", {})
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(part, {})), (where, container["name"])


def test_every_pod_and_container_runs_as_non_root(render_chart: Any, value_set: Any) -> None:
    _, values = value_set
    for where, pod, container in all_containers(render_chart(values)):
        pod_context = pod["securityContext"]
        assert pod_context["runAsNonRoot"] is True, where
        assert pod_context["runAsUser"] > 0, where
        assert pod_context["seccompProfile"]["type"] == "RuntimeDefault", where
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, (where, container["name"])
        assert context.get("runAsUser", 1) > 0, (where, container["name"])
        assert context["allowPrivilegeEscalation"] is False, (where, container["name"])
        assert context["capabilities"]["drop"] == ["ALL"], (where, container["name"])
        assert "add" not in context["capabilities"], (where, container["name"])
        assert not context.get("privileged", False), (where, container["name"])


def test_root_filesystems_are_read_only_except_where_listed(render_chart: Any) -> None:
    writable = set()
    for _, _, container in all_containers(render_chart()):
        if not container["securityContext"]["readOnlyRootFilesystem"]:
            writable.add(container["name"])
    assert writable == WRITABLE_ROOT


def test_no_latest_tag_and_every_image_pinned(render_chart: Any, value_set: Any) -> None:
    _, values = value_set
    for where, _, container in all_containers(render_chart(values)):
        image = container["image"]
        name_and_tag = image.split("@")[0]
        tag = name_and_tag.rsplit(":", 1)[1] if ":" in name_and_tag.rsplit("/", 1)[-1] else ""
        assert tag and tag != "latest", (where, image)


def test_digests_and_mirror_registry_are_used(render_chart: Any) -> None:
    objects = render_chart(VALUE_SETS["air-gapped-mirror"])
    images = {c["image"] for _, _, c in all_containers(objects)}
    assert all(image.startswith("registry.hospital.local:5000/") for image in images), images
    assert "registry.hospital.local:5000/openjip/openjip:0.3.0@sha256:" + "a" * 64 in images
    for where, pod in pod_specs(objects):
        assert pod["imagePullSecrets"] == [{"name": "mirror"}], where


def test_rbac_is_namespace_scoped_and_bound_to_pod_launchers_only(render_chart: Any) -> None:
    objects = render_chart()
    assert find(objects, "ClusterRole") == [] and find(objects, "ClusterRoleBinding") == []
    (role,) = find(objects, "Role")
    resources = {resource for rule in role["rules"] for resource in rule["resources"]}
    assert resources == {"pods", "pods/log", "pods/exec", "events"}
    assert all("*" not in rule["verbs"] for rule in role["rules"])
    (binding,) = find(objects, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert {s["name"] for s in binding["subjects"]} == {
        "site-openjip-airflow-scheduler",
        "site-openjip-airflow-triggerer",
        "site-openjip-airflow-worker",
    }


@pytest.mark.parametrize("name", ["default", "kubernetes-executor"])
def test_only_pod_launchers_get_an_api_token(render_chart: Any, name: str) -> None:
    objects = render_chart(VALUE_SETS[name])
    with_token = {
        pod["serviceAccountName"]
        for _, pod in pod_specs(objects)
        if pod.get("automountServiceAccountToken", True)
    }
    launchers = {"site-openjip-airflow-scheduler", "site-openjip-airflow-triggerer"}
    if name == "kubernetes-executor":
        launchers.add("site-openjip-airflow-worker")
    assert with_token == launchers
    for account in find(objects, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_every_pod_uses_its_own_service_account(render_chart: Any) -> None:
    objects = render_chart(VALUE_SETS["kubernetes-executor"])
    accounts = {account["metadata"]["name"] for account in find(objects, "ServiceAccount")}
    for where, pod in pod_specs(objects):
        assert pod["serviceAccountName"] in accounts, where
        assert pod["serviceAccountName"] != "default", where


def test_only_the_federation_service_writes_the_workflow_specs(render_chart: Any) -> None:
    objects = render_chart(VALUE_SETS["kubernetes-executor"])
    writers, readers = set(), set()
    for where, pod in pod_specs(objects):
        claims = {
            volume["name"]
            for volume in pod.get("volumes", [])
            if volume.get("persistentVolumeClaim", {}).get("claimName") == "site-openjip-workflows"
        }
        for container in containers(pod):
            for mount in container.get("volumeMounts", []):
                if mount["name"] in claims:
                    assert mount["mountPath"] == "/var/lib/openjip/workflows", where
                    (readers if mount.get("readOnly") else writers).add(where)
    assert writers == {"Deployment/site-openjip-federation"}
    assert {
        "Deployment/site-openjip-receiver",
        "Deployment/site-openjip-airflow-scheduler",
        "Deployment/site-openjip-airflow-dag-processor",
        "Pod/placeholder-name",
    } <= readers


def test_worker_pods_take_their_image_from_the_pod_template(render_chart: Any) -> None:
    objects = render_chart(VALUE_SETS["air-gapped-mirror"])
    image = "registry.hospital.local:5000/openjip/airflow:0.3.0@sha256:" + "b" * 64
    workers = embedded_pods(objects)
    assert len(workers) == 2  # every task's, the federated-learning task's
    for worker in workers:
        (base,) = worker["spec"]["containers"]
        assert base["image"] == image
    names = {v["name"] for _, _, c in all_containers(objects) for v in c.get("env", [])}
    assert not any("WORKER_CONTAINER" in name for name in names)
