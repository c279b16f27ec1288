"""Lint the chart, render it for every value set, validate every manifest against Kubernetes."""

from __future__ import annotations

import json
from typing import Any

import helm_python
import kubernetes_validate
import pytest
from chart_objects import CHART_DIR, VALUE_SETS, find

# Kubernetes versions every manifest must be valid for: the oldest supported and the newest known.
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
# Custom resources: kubernetes-validate has no schema for them (checked by shape below).
CUSTOM_KINDS = {"ServiceMonitor"}


def test_lint_has_no_warnings_or_errors() -> None:
    report = helm_python.lint(CHART_DIR, strict=True, namespace="openjip")
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


# Every value set is rendered and validated below; lint those that switch whole components.
@pytest.mark.parametrize("name", ["external-services", "air-gapped-mirror", "everything-disabled"])
def test_lint_passes_for_value_sets(name: str) -> None:
    report = helm_python.lint(CHART_DIR, VALUE_SETS[name], namespace="openjip")
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_every_value_set_renders_objects(render_chart: Any, value_set: Any) -> None:
    name, values = value_set
    objects = render_chart(values)
    assert objects or name == "everything-disabled", f"{name} rendered nothing"
    for obj in objects:
        assert obj["metadata"]["name"], obj


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_pass_kubernetes_validate_strict(render_chart: Any, version: str) -> None:
    """Every object of every value set; an object rendered alike by several sets is checked once."""
    distinct = {}
    for values in VALUE_SETS.values():
        for obj in render_chart(values):
            if obj["kind"] not in CUSTOM_KINDS:
                distinct[json.dumps(obj, sort_keys=True)] = obj
    assert len(distinct) > 100
    failures = []
    for obj in distinct.values():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message}")
    assert failures == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_embedded_worker_pod_template_is_a_valid_pod(render_chart: Any, version: str) -> None:
    from chart_objects import embedded_pods

    pods = embedded_pods(render_chart(VALUE_SETS["kubernetes-executor"]))
    assert len(pods) == 2  # every task's, the federated-learning task's
    for pod in pods:
        kubernetes_validate.validate(pod, version, strict=True)


def test_service_monitors_select_the_metrics_services(render_chart: Any) -> None:
    objects = render_chart(VALUE_SETS["air-gapped-mirror"])
    monitors = find(objects, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {
        "site-openjip-receiver",
        "site-openjip-web",
        "site-openjip-federation",
    }
    services = {s["metadata"]["name"]: s for s in find(objects, "Service")}
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        service = services[monitor["metadata"]["name"]]
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}


def test_no_service_monitor_by_default(render_chart: Any) -> None:
    assert find(render_chart(), "ServiceMonitor") == []


def test_receiver_service_exposes_dicom_as_load_balancer(render_chart: Any) -> None:
    (service,) = find(
        render_chart(VALUE_SETS["loadbalancer-receiver"]), "Service", "site-openjip-receiver"
    )
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert service["spec"]["loadBalancerSourceRanges"] == ["10.20.0.0/16"]
    dicom = next(port for port in service["spec"]["ports"] if port["name"] == "dicom")
    assert (dicom["port"], dicom["nodePort"]) == (11112, 31112)


def test_everything_disabled_leaves_no_workload(render_chart: Any) -> None:
    objects = render_chart(VALUE_SETS["everything-disabled"])
    kinds = {obj["kind"] for obj in objects}
    assert not kinds & {"Deployment", "StatefulSet", "Job", "Pod", "NetworkPolicy", "Role"}


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"minio": {"enabled": False}}, "externalS3.endpoint"),
        (
            {"minio": {"enabled": False}, "externalS3": {"endpoint": "s3.example:443"}},
            "externalS3.existingSecret",
        ),
        ({"opensearch": {"enabled": False}}, "externalOpenSearch.url"),
        ({"postgresql": {"enabled": False}}, "externalPostgresql.host"),
        (
            {"postgresql": {"enabled": False}, "externalPostgresql": {"host": "db"}},
            "externalPostgresql.existingSecret",
        ),
        ({"airflow": {"scheduler": {"replicas": 2}}}, "airflow.scheduler.replicas"),
        (
            {"federation": {"peerEgress": {"cidrs": ["10.99.0.0/16"]}}},
            "federation.peerEgress.cidrs",
        ),
        (
            {
                **VALUE_SETS["external-services"],
                "federation": {"peerEgress": {"cidrs": ["192.168.40.0/24"]}},
            },
            "federation.peerEgress.cidrs",
        ),
    ],
)
def test_inconsistent_values_fail_naming_the_value(
    chart: helm_python.Chart, values: dict[str, Any], named: str
) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=named.replace(".", r"\.")):
        chart.render(values, name="site", namespace="openjip")
