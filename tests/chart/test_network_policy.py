"""NetworkPolicies: default deny; the federation service has no route to the object store."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from chart_objects import VALUE_SETS, embedded_pods, find, pod_labels, pod_specs

STORE_PORTS = {9000, 9443}  # in-cluster MinIO, the external store of the external-services set


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels / matchExpressions) selects ``labels``."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if (operator == "In" and value not in expression["values"]) or (
            operator == "NotIn" and value in expression["values"]
        ):
            return False
        if (operator == "Exists" and not present) or (operator == "DoesNotExist" and present):
            return False
    return True


def policies_for(objects: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    return [p for p in find(objects, "NetworkPolicy") if selects(p["spec"]["podSelector"], labels)]


def egress_rules(objects: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        rule
        for policy in policies_for(objects, labels)
        if "Egress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("egress", [])
    ]


def ingress_peers(objects: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        peer
        for policy in policies_for(objects, labels)
        if "Ingress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("ingress", [])
        for peer in rule.get("from", [{"ipBlock": {"cidr": "0.0.0.0/0"}}])
    ]


def test_default_deny_covers_every_pod_of_the_namespace(render_chart: Any, value_set: Any) -> None:
    name, values = value_set
    objects = render_chart(values)
    if not find(objects, "NetworkPolicy"):
        assert name == "everything-disabled"
        return
    deny = [
        p
        for p in find(objects, "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert len(deny) == 1


@pytest.mark.parametrize("name", ["default", "external-services", "air-gapped-mirror"])
def test_federation_egress_excludes_the_object_store(render_chart: Any, name: str) -> None:
    values = VALUE_SETS[name]
    objects = render_chart(values)
    federation = pod_labels(objects, "Deployment", "site-openjip-federation")
    rules = egress_rules(objects, federation)
    assert rules, "the federation pod has no egress rule at all"
    minio = {"app.kubernetes.io/component": "minio", "app.kubernetes.io/instance": "site"}
    minio = {**minio, "app.kubernetes.io/name": "openjip"}
    cluster = [ipaddress.ip_network(c) for c in ["10.0.0.0/8"]]
    external_store = [
        ipaddress.ip_network(c) for c in values.get("externalS3", {}).get("cidrs", [])
    ]
    for rule in rules:
        ports = {port["port"] for port in rule.get("ports", [])}
        assert ports, f"an egress rule of the federation pod allows every port: {rule}"
        assert not ports & STORE_PORTS, rule
        for peer in rule.get("to", []):
            if "podSelector" in peer:
                assert not selects(peer["podSelector"], minio), rule
                continue
            block = peer["ipBlock"]
            excepted = [ipaddress.ip_network(c) for c in block.get("except", [])]
            allowed = ipaddress.ip_network(block["cidr"])
            for private in [*cluster, *external_store]:
                if private.subnet_of(allowed):
                    assert any(private.subnet_of(e) for e in excepted), (private, block)
                else:
                    assert not allowed.subnet_of(private), (private, block)


@pytest.mark.parametrize("name", ["default", "external-services"])
def test_federation_pod_has_no_store_credentials_or_settings(render_chart: Any, name: str) -> None:
    objects = render_chart(VALUE_SETS[name])
    (deployment,) = find(objects, "Deployment", "site-openjip-federation")
    pod = deployment["spec"]["template"]["spec"]
    store_secrets = {"site-openjip-store", "hospital-s3"}
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        for variable in container.get("env", []):
            assert not variable["name"].startswith(("OPENJIP_STORAGE", "OPENJIP_INDEX")), variable
            secret = variable.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
            assert secret not in store_secrets, variable
        assert "envFrom" not in container
    for volume in pod["volumes"]:
        assert volume.get("secret", {}).get("secretName") not in store_secrets, volume


def test_object_store_admits_only_store_clients(render_chart: Any) -> None:
    objects = render_chart()
    minio = pod_labels(objects, "StatefulSet", "site-openjip-minio")
    peers = ingress_peers(objects, minio)
    assert peers == [{"podSelector": {"matchLabels": {"openjip.io/store-client": "true"}}}]
    federation = pod_labels(objects, "Deployment", "site-openjip-federation")
    assert not any(selects(peer["podSelector"], federation) for peer in peers)
    clients = {
        where
        for where, _ in pod_specs(objects)
        if where.startswith(("Deployment", "StatefulSet", "Job"))
    }
    store_clients = {
        f"{obj['kind']}/{obj['metadata']['name']}"
        for obj in objects
        if obj["kind"] in {"Deployment", "StatefulSet", "Job"}
        and obj["spec"]["template"]["metadata"]["labels"].get("openjip.io/store-client") == "true"
    }
    assert store_clients == {
        "Deployment/site-openjip-receiver",
        "Deployment/site-openjip-web",
        "Deployment/site-openjip-airflow-scheduler",
        # The web service's login sessions live in the store: Airflow's login accepts them.
        "Deployment/site-openjip-airflow-api",
        "Job/site-openjip-migrations",
    }
    assert "Deployment/site-openjip-federation" in clients - store_clients


def test_analysis_pods_reach_only_the_web_service(
    render_chart: Any, analysis_pod: dict[str, Any]
) -> None:
    """The pod an analysis step really gets, against the chart's policies: its step grant is good
    at the web service's step routes only, and it has no route to the store or the index."""
    objects = render_chart()
    labels = analysis_pod["metadata"]["labels"]
    targets = set()
    for rule in egress_rules(objects, labels):
        for peer in rule["to"]:
            selected = peer.get("podSelector", {}).get("matchLabels", {})
            targets.add(selected.get("app.kubernetes.io/component") or selected.get("k8s-app"))
            if selected.get("app.kubernetes.io/component") == "web":
                assert rule["ports"] == [{"protocol": "TCP", "port": 8042}]
    assert targets == {"web", "kube-dns"}
    assert ingress_peers(objects, labels) == []
    for server in ("site-openjip-minio", "site-openjip-opensearch"):
        peers = ingress_peers(objects, pod_labels(objects, "StatefulSet", server))
        assert not any(selects(peer.get("podSelector", {}), labels) for peer in peers), server
    web_peers = ingress_peers(objects, pod_labels(objects, "Deployment", "site-openjip-web"))
    assert any(selects(peer.get("podSelector", {}), labels) for peer in web_peers)


def test_database_admits_only_db_clients(render_chart: Any) -> None:
    objects = render_chart()
    postgresql = pod_labels(objects, "StatefulSet", "site-openjip-postgresql")
    assert ingress_peers(objects, postgresql) == [
        {"podSelector": {"matchLabels": {"openjip.io/db-client": "true"}}}
    ]


def test_ingress_can_be_limited_to_given_networks(render_chart: Any) -> None:
    objects = render_chart(VALUE_SETS["air-gapped-mirror"])
    receiver = pod_labels(objects, "Deployment", "site-openjip-receiver")
    dicom = [
        rule
        for policy in policies_for(objects, receiver)
        for rule in policy["spec"].get("ingress", [])
        if {"protocol": "TCP", "port": 11112} in rule["ports"]
    ]
    (rule,) = dicom
    assert {"ipBlock": {"cidr": "172.16.0.0/12"}} in rule["from"]
    assert all("namespaceSelector" not in peer for peer in rule["from"])


def test_peer_cidrs_outside_the_cluster_carry_no_except(render_chart: Any) -> None:
    objects = render_chart(VALUE_SETS["air-gapped-mirror"])
    (policy,) = find(objects, "NetworkPolicy", "site-openjip-np-federation")
    blocks = [peer["ipBlock"] for peer in policy["spec"]["egress"][0]["to"]]
    assert blocks == [{"cidr": "192.168.0.0/16"}, {"cidr": "172.20.0.0/16"}]


def test_federation_reaches_only_its_own_web_service_inside_the_cluster(render_chart: Any) -> None:
    objects = render_chart()
    federation = pod_labels(objects, "Deployment", "site-openjip-federation")
    web = pod_labels(objects, "Deployment", "site-openjip-web")
    # Pods of this namespace the federation may reach (DNS, in kube-system, aside).
    (reachable,) = [
        (peer["podSelector"], rule["ports"])
        for rule in egress_rules(objects, federation)
        for peer in rule.get("to", [])
        if "podSelector" in peer and "namespaceSelector" not in peer
    ]
    selector, ports = reachable
    assert selects(selector, web) and ports == [{"protocol": "TCP", "port": 8042}]
    for workload in find(objects, "Deployment") + find(objects, "StatefulSet"):
        if selects(selector, workload["spec"]["template"]["metadata"]["labels"]):
            assert workload["metadata"]["name"] == "site-openjip-web"
    assert any(
        "podSelector" in peer and selects(peer["podSelector"], federation)
        for peer in ingress_peers(objects, web)
    )
    # Both pods mount the one loopback Secret and the federation is told where the web is.
    for name in ("site-openjip-federation", "site-openjip-web"):
        (deployment,) = find(objects, "Deployment", name)
        pod = deployment["spec"]["template"]["spec"]
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        assert volumes["loopback"]["secret"]["secretName"] == "site-openjip-loopback"
        env = {v["name"]: v.get("value") for v in pod["containers"][0]["env"]}
        assert env["OPENJIP_FEDERATION__LOOPBACK_SECRET_FILE"].startswith("/var/run/secrets/")
        assert env["OPENJIP_FEDERATION__SITE_WEB_URL"] == "http://site-openjip-web:8042"


def _worker_pods(values: dict[str, Any], render_chart: Any) -> tuple[Any, dict[str, Any], Any]:
    objects = render_chart(values)
    (config_map,) = find(objects, "ConfigMap", "site-openjip-pod-template")
    pods = {
        name: pod for name, pod in zip(config_map["data"], embedded_pods([config_map]), strict=True)
    }
    return objects, pods["federated_pod_template.yaml"], pods["pod_template.yaml"]


def _targets(rules: list[dict[str, Any]]) -> set[str]:
    """Each egress peer as ``component`` (pods of the release), ``dns`` or ``cidr:port,...``."""
    found = set()
    for rule in rules:
        ports = ",".join(str(p["port"]) for p in rule.get("ports", []))
        for peer in rule["to"]:
            if "ipBlock" in peer:
                found.add(f"{peer['ipBlock']['cidr']}:{ports}")
            elif "namespaceSelector" in peer:
                found.add("dns")
            else:
                found.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"])
    return found


def test_the_federated_task_pod_reaches_only_the_coordinators_besides_its_own_site(
    render_chart: Any,
) -> None:
    coordinators = {"cidrs": ["203.0.113.7/32"], "ports": [8443]}
    values = {**VALUE_SETS["kubernetes-executor"], "learning": {"coordinators": coordinators}}
    objects, federated, worker = _worker_pods(values, render_chart)

    labels = federated["metadata"]["labels"]
    assert labels["openjip.io/federated-learning"] == "true"
    assert "openjip.io/kube-api-client" not in labels
    assert federated["spec"]["automountServiceAccountToken"] is False
    assert _targets(egress_rules(objects, labels)) == {
        "203.0.113.7/32:8443",
        "dns",
        "minio",
        "opensearch",
        "airflow-api",
    }
    # Every other task's pod reaches no coordinator.
    assert not any(
        "ipBlock" in peer and peer["ipBlock"]["cidr"] == "203.0.113.7/32"
        for rule in egress_rules(objects, worker["metadata"]["labels"])
        for peer in rule["to"]
    )
    [env] = [
        e["value"]
        for e in worker["spec"]["containers"][0]["env"]
        if e["name"] == "OPENJIP_LEARNING__POD_TEMPLATE_FILE"
    ]
    assert env == "/opt/openjip/pod-template/federated_pod_template.yaml"


def test_without_coordinators_the_federated_task_pod_reaches_none(render_chart: Any) -> None:
    objects, federated, _ = _worker_pods(VALUE_SETS["kubernetes-executor"], render_chart)
    assert not any(
        "ipBlock" in peer
        for rule in egress_rules(objects, federated["metadata"]["labels"])
        for peer in rule["to"]
    )
