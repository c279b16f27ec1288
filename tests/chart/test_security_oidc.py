"""Single sign-on in the chart: OIDC values validated by the schema, rendered into the web
service and every Airflow container (with openjip's auth manager instead of SimpleAuthManager),
an Ingress with TLS for web, Airflow and the bundled Keycloak whose realm comes from values,
and the receiver's DIMSE permissions and TLS Secret."""

from __future__ import annotations

import json
from typing import Any

import helm_python
import pytest
from chart_objects import VALUE_SETS, find, merge

SSO = VALUE_SETS["single-sign-on"]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def _container(objects: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    (workload,) = find(objects, "Deployment", deployment)
    return workload["spec"]["template"]["spec"]["containers"][0]


def test_oidc_settings_reach_web_and_airflow(render_chart: Any) -> None:
    objects = render_chart(SSO)
    for deployment in (
        "site-openjip-web",
        "site-openjip-airflow-api",
        "site-openjip-airflow-scheduler",
    ):
        env = _env(_container(objects, deployment))
        assert env["OPENJIP_ACCESS__OIDC_ISSUER"] == "https://sso.hospital.example/realms/openjip"
        assert env["OPENJIP_ACCESS__OIDC_CLIENT_ID"] == "openjip"
        assert env["OPENJIP_ACCESS__OIDC_CLIENT_SECRET"] == {
            "secretKeyRef": {"name": "openjip-oidc", "key": "client-secret"}
        }
        groups = json.loads(env["OPENJIP_ACCESS__OIDC_GROUPS"])
        assert groups == {"radiology": {"roles": ["viewer"], "projects": ["p1"]}}
        assert env["OPENJIP_ACCESS__ALLOW_ANONYMOUS"] == "false"
    airflow = _env(_container(objects, "site-openjip-airflow-api"))
    assert (
        airflow["AIRFLOW__CORE__AUTH_MANAGER"] == "openjip.airflow.auth_manager.OpenjipAuthManager"
    )
    assert airflow["AIRFLOW__API__BASE_URL"] == "https://workflows.hospital.example"
    rendered = json.dumps(objects)
    assert "SIMPLE_AUTH_MANAGER" not in rendered and "passwords.json" not in rendered


def test_ingress_serves_every_browser_surface_over_tls(render_chart: Any) -> None:
    (ingress,) = find(render_chart(SSO), "Ingress")
    hosts = {rule["host"]: rule for rule in ingress["spec"]["rules"]}
    assert set(hosts) == {
        "images.hospital.example", "workflows.hospital.example", "sso.hospital.example",
    }  # fmt: skip
    tls = {entry["hosts"][0]: entry["secretName"] for entry in ingress["spec"]["tls"]}
    assert tls == {
        "images.hospital.example": "images-tls",
        "workflows.hospital.example": "workflows-tls",
        "sso.hospital.example": "sso-tls",
    }
    backend = hosts["workflows.hospital.example"]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "site-openjip-airflow-api"
    assert not find(render_chart(VALUE_SETS["default"]), "Ingress")


def test_keycloak_imports_the_realm_of_the_values(render_chart: Any) -> None:
    realm = {"realm": "hospital", "enabled": True, "groups": [{"name": "radiology"}]}
    objects = render_chart(merge(SSO, {"keycloak": {"realm": realm}}))
    (config,) = find(objects, "ConfigMap", "site-openjip-keycloak-realm")
    assert json.loads(config["data"]["realm.json"]) == realm
    keycloak = _container(objects, "site-openjip-keycloak")
    assert "--import-realm" in keycloak["args"]
    assert "--hostname=https://sso.hospital.example" in keycloak["args"]
    assert _env(keycloak)["KC_BOOTSTRAP_ADMIN_PASSWORD"] == {
        "secretKeyRef": {"name": "site-openjip-keycloak", "key": "admin-password"}
    }
    (secret,) = find(objects, "Secret", "site-openjip-keycloak")
    assert set(secret["data"]) == {"admin-password"}


def test_receiver_gets_dimse_permissions_and_tls(render_chart: Any) -> None:
    objects = render_chart(SSO)
    receiver = _container(objects, "site-openjip-receiver")
    env = _env(receiver)
    assert json.loads(env["OPENJIP_RECEIVER__UNKNOWN_AE_ALLOW"]) == ["echo", "store"]
    assert json.loads(env["OPENJIP_RECEIVER__KNOWN_AES"])["PACS"]["tls"] is True
    assert env["OPENJIP_RECEIVER__TLS_CERT"] == "/var/run/secrets/openjip/dicom-tls/tls.crt"
    assert env["OPENJIP_RECEIVER__TLS_CA"] == "/var/run/secrets/openjip/dicom-tls/ca.crt"
    (workload,) = find(objects, "Deployment", "site-openjip-receiver")
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    assert volumes["dicom-tls"]["secret"]["secretName"] == "dicom-tls"
    plain = _env(_container(render_chart(VALUE_SETS["default"]), "site-openjip-receiver"))
    assert "OPENJIP_RECEIVER__TLS_CERT" not in plain


@pytest.mark.parametrize(
    ("oidc", "pointer"),
    [
        ({"issuer": "http://sso.example/realms/r"}, "/access/oidc/issuer"),
        ({"issuer": "https://sso.example/r?x=1"}, "/access/oidc/issuer"),
        ({"issuer": "https://sso.example/realms/r", "clientId": ""}, "/access/oidc/clientId"),
        ({"groups": {"g": {"roles": ["superuser"]}}}, "/access/oidc/groups/g/roles/0"),
        ({"groups": {"g": {"rights": ["viewer"]}}}, "/access/oidc/groups/g"),
        ({"clientSecret": {"existingSecret": "s", "key": ""}}, "/access/oidc/clientSecret/key"),
    ],
)
def test_schema_refuses_bad_oidc_values(
    chart: helm_python.Chart, oidc: dict[str, Any], pointer: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError) as error:
        chart.render({"access": {"oidc": oidc}}, name="site", namespace="openjip")
    assert f"at '{pointer}'" in str(error.value), str(error.value)


def test_good_oidc_values_pass(chart: helm_python.Chart) -> None:
    chart.validate_schema(chart.merge_values(SSO))
