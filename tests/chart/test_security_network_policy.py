"""NetworkPolicies of the access work: DICOMweb is never open to every namespace (Prometheus
reaches the web service's metrics port only), and the services that sign users in reach the
identity provider and nothing more."""

from __future__ import annotations

from typing import Any

import pytest
from chart_objects import VALUE_SETS, find, merge, pod_labels
from test_network_policy import policies_for

DICOMWEB = {"protocol": "TCP", "port": 8042}
WEB_METRICS = {"protocol": "TCP", "port": 9142}


def _web_ingress(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    web = pod_labels(objects, "Deployment", "site-openjip-web")
    return [
        rule
        for policy in policies_for(objects, web)
        if "Ingress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("ingress", [])
    ]


@pytest.mark.parametrize("name", ["default", "air-gapped-mirror", "single-sign-on"])
def test_no_namespace_wide_rule_reaches_dicomweb(render_chart: Any, name: str) -> None:
    for rule in _web_ingress(render_chart(VALUE_SETS[name])):
        if DICOMWEB in rule["ports"]:
            assert all("namespaceSelector" not in peer for peer in rule.get("from", [])), rule


def test_metrics_rule_is_on_the_metrics_port_only(render_chart: Any) -> None:
    objects = render_chart(VALUE_SETS["air-gapped-mirror"])
    (metrics,) = [
        rule
        for rule in _web_ingress(objects)
        if any("namespaceSelector" in peer for peer in rule.get("from", []))
    ]
    assert metrics["ports"] == [WEB_METRICS]
    monitoring = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    assert metrics["from"] == [{"namespaceSelector": monitoring}]
    (deployment,) = find(objects, "Deployment", "site-openjip-web")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 9142, "protocol": "TCP"} in container["ports"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["OPENJIP_WEB__METRICS_PORT"] == "9142"
    (monitor,) = find(objects, "ServiceMonitor", "site-openjip-web")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_dicomweb_limited_to_the_given_peers(render_chart: Any) -> None:
    values = merge(
        VALUE_SETS["default"],
        {"networkPolicy": {"ingressFrom": [{"podSelector": {"matchLabels": {"role": "proxy"}}}]}},
    )
    proxy = {"podSelector": {"matchLabels": {"role": "proxy"}}}
    dicomweb = [r for r in _web_ingress(render_chart(values)) if DICOMWEB in r["ports"]]
    assert all("from" in rule for rule in dicomweb)  # no rule open to anyone
    assert any(proxy in rule["from"] for rule in dicomweb)


def test_oidc_egress_of_web_and_airflow_only(render_chart: Any) -> None:
    external = merge(
        VALUE_SETS["default"],
        {
            "access": {
                "oidc": {
                    "issuer": "https://sso.example/realms/r",
                    "egress": {"cidrs": ["192.0.2.0/24"]},
                }
            }
        },
    )
    (policy,) = find(render_chart(external), "NetworkPolicy", "site-openjip-np-oidc-clients")
    selected = policy["spec"]["podSelector"]["matchExpressions"][1]["values"]
    assert selected == ["web", "airflow-api"]
    assert policy["spec"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"protocol": "TCP", "port": 443}]}
    ]
    bundled = render_chart(VALUE_SETS["single-sign-on"])
    (policy,) = find(bundled, "NetworkPolicy", "site-openjip-np-oidc-clients")
    (rule,) = policy["spec"]["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "keycloak"
    assert not find(
        render_chart(VALUE_SETS["default"]), "NetworkPolicy", "site-openjip-np-oidc-clients"
    )
