"""The OPENJIP_* environment the chart sets names real fields of the settings model, and the
analysis pods the runner builds from it use what the chart creates."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from chart_objects import VALUE_SETS, containers, find, pod_specs
from pydantic import BaseModel

from openjip.config import Settings


def is_setting(name: str) -> bool:
    """Whether OPENJIP_<FIELD> or OPENJIP_<SECTION>__<FIELD> is a field of :class:`Settings`."""
    parts = name.removeprefix("OPENJIP_").lower().split("__")
    model: type[BaseModel] = Settings
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if depth < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_every_openjip_variable_is_a_setting(render_chart: Any) -> None:
    names = set()
    for values in VALUE_SETS.values():
        for _, pod in pod_specs(render_chart(values)):
            for container in containers(pod):
                names |= {
                    variable["name"]
                    for variable in container.get("env", [])
                    if variable["name"].startswith("OPENJIP_")
                }
    unknown = sorted(name for name in names if not is_setting(name))
    assert unknown == []
    assert len(names) > 20


def test_federation_gets_no_store_index_or_airflow_settings(render_chart: Any) -> None:
    (deployment,) = find(render_chart(), "Deployment", "site-openjip-federation")
    for container in containers(deployment["spec"]["template"]["spec"]):
        for variable in container.get("env", []):
            assert not variable["name"].startswith(
                ("OPENJIP_STORAGE", "OPENJIP_INDEX", "OPENJIP_AIRFLOW")
            ), variable


def test_analysis_pods_use_what_the_chart_creates(
    render_chart: Any, analysis_pod: dict[str, Any]
) -> None:
    objects = render_chart()
    accounts = {account["metadata"]["name"] for account in find(objects, "ServiceAccount")}
    secrets = {secret["metadata"]["name"]: secret for secret in find(objects, "Secret")}
    spec = analysis_pod["spec"]
    assert analysis_pod["metadata"]["namespace"] == "openjip"
    assert spec["serviceAccountName"] == "site-openjip-analysis"
    assert spec["serviceAccountName"] in accounts
    # No credential by reference either: the pod's only credential is its step grant.
    assert not any("valueFrom" in v for c in containers(spec) for v in c.get("env", []))
    grant_key = {"name": "site-openjip-airflow", "key": "step-token-secret"}
    for name in ("site-openjip-web", "site-openjip-airflow-scheduler"):
        (deployment,) = find(objects, "Deployment", name)
        env = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["OPENJIP_ACCESS__STEP_TOKEN_SECRET"]["valueFrom"]["secretKeyRef"] == grant_key
    assert "step-token-secret" in secrets["site-openjip-airflow"]["data"]
    (web,) = find(objects, "Deployment", "site-openjip-web")
    openjip_image = web["spec"]["template"]["spec"]["containers"][0]["image"]
    assert {c["image"] for c in containers(spec)} >= {openjip_image}
    env = {v["name"]: v.get("value") for c in containers(spec) for v in c.get("env", [])}
    assert env["OPENJIP_STEP_WEB_URL"] == "http://site-openjip-web:8042"
    assert not any(name.startswith(("OPENJIP_STORAGE", "OPENJIP_INDEX")) for name in env)


def test_federation_speaks_https_with_a_tls_secret(render_chart: Any) -> None:
    objects = render_chart(VALUE_SETS["air-gapped-mirror"])
    (deployment,) = find(objects, "Deployment", "site-openjip-federation")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert env["OPENJIP_FEDERATION__TLS_CERT"] == f"{mounts['tls']}/tls.crt"
    assert env["OPENJIP_FEDERATION__TLS_KEY"] == f"{mounts['tls']}/tls.key"
    assert env["OPENJIP_FEDERATION__CA_BUNDLE"] == f"{mounts['ca-bundle']}/ca.crt"
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "federation-tls"
    assert volumes["ca-bundle"]["configMap"]["name"] == "peer-cas"
    (healthz,) = find(objects, "Pod", "site-openjip-test-healthz")
    assert (
        "https://site-openjip-federation:8443/healthz" in healthz["spec"]["containers"][0]["args"]
    )


def test_the_receiver_starts_series_arrival_runs_only_with_the_charts_airflow(
    render_chart: Any,
) -> None:
    def receiver_env(values: dict[str, Any]) -> dict[str, Any]:
        (deployment,) = find(render_chart(values), "Deployment", "site-openjip-receiver")
        (container,) = containers(deployment["spec"]["template"]["spec"])
        return {variable["name"]: variable.get("value") for variable in container["env"]}

    with_airflow = receiver_env({})
    assert with_airflow["OPENJIP_AIRFLOW__URL"] == "http://site-openjip-airflow-api:8080"
    assert "OPENJIP_AIRFLOW__ENABLED" not in with_airflow  # the setting's default: on
    without = receiver_env({"airflow": {"enabled": False}})
    assert without["OPENJIP_AIRFLOW__ENABLED"] == "false"
    assert "OPENJIP_AIRFLOW__URL" not in without


def test_federation_speaks_https_by_default_with_a_generated_certificate(
    render_chart: Any,
) -> None:
    from cryptography import x509

    objects = render_chart({"federation": {"tls": {"hosts": ["fed.hospital-a.example"]}}})
    (deployment,) = find(objects, "Deployment", "site-openjip-federation")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert env["OPENJIP_FEDERATION__TLS_CERT"].endswith("/tls.crt")
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "site-openjip-federation-tls"
    (secret,) = find(objects, "Secret", "site-openjip-federation-tls")
    assert secret["type"] == "kubernetes.io/tls"
    certificate = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) >= {
        "site-openjip-federation",
        "fed.hospital-a.example",
    }
    (healthz,) = find(objects, "Pod", "site-openjip-test-healthz")
    assert any(
        arg.startswith("https://site-openjip-federation:")
        for arg in healthz["spec"]["containers"][0]["args"]
    )


def test_federation_tls_can_be_turned_off_for_a_terminating_proxy(render_chart: Any) -> None:
    objects = render_chart({"federation": {"tls": {"enabled": False}}})
    (deployment,) = find(objects, "Deployment", "site-openjip-federation")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "OPENJIP_FEDERATION__TLS_CERT" not in {variable["name"] for variable in container["env"]}
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert find(objects, "Secret", "site-openjip-federation-tls") == []


def test_one_login_across_two_hosts_sets_the_cookie_domain_for_web_and_airflow(
    render_chart: Any,
) -> None:
    objects = render_chart({"access": {"sessionCookieDomain": ".hospital.example"}})
    for name in ("site-openjip-web", "site-openjip-airflow-api"):
        (deployment,) = find(objects, "Deployment", name)
        env = {
            v["name"]: v.get("value")
            for v in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["OPENJIP_ACCESS__SESSION_COOKIE_DOMAIN"] == ".hospital.example", name
    (web,) = find(render_chart(), "Deployment", "site-openjip-web")
    names = {v["name"] for v in web["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "OPENJIP_ACCESS__SESSION_COOKIE_DOMAIN" not in names  # the host itself by default


def _public_urls(objects: list[dict[str, Any]]) -> dict[str, set[str | None]]:
    """OPENJIP_WEB__PUBLIC_URL of each pod (``None`` where unset), by the pod's name."""
    urls: dict[str, set[str | None]] = {}
    for name, pod in pod_specs(objects):
        for container in containers(pod):
            env = {v["name"]: v.get("value") for v in container.get("env", [])}
            if any(key.startswith("OPENJIP_") for key in env):
                urls.setdefault(name, set()).add(env.get("OPENJIP_WEB__PUBLIC_URL"))
    return urls


@pytest.mark.parametrize(
    ("values", "url"),
    [
        ({"web": {"publicUrl": "https://pacs.hospital.example/openjip/"}},
         "https://pacs.hospital.example/openjip"),
        (VALUE_SETS["single-sign-on"], "https://images.hospital.example"),
        ({**VALUE_SETS["single-sign-on"], "web": {"publicUrl": "https://other.example"}},
         "https://other.example"),
        ({"airflow": {"executor": "KubernetesExecutor"}, "web": {"publicUrl": "http://w.example"}},
         "http://w.example"),
    ],
)  # fmt: skip
def test_airflow_and_web_pods_know_where_browsers_reach_the_web_service(
    render_chart: Any, values: dict[str, Any], url: str
) -> None:
    urls = _public_urls(render_chart(values))
    airflow = {name: found for name, found in urls.items() if "airflow" in name}
    assert airflow and all(found == {url} for found in airflow.values()), airflow
    (web,) = (found for name, found in urls.items() if name.endswith("-web"))
    assert web == {url}


def test_without_a_public_url_or_ingress_the_links_keep_the_port_forward_default(
    render_chart: Any,
) -> None:
    assert {None} == set().union(*_public_urls(render_chart()).values())
    assert Settings().web_url == "http://127.0.0.1:8042"
