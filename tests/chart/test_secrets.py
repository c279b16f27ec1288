"""Secrets are generated once and kept: real Helm `lookup` against a minimal Kubernetes API.

helm-python-sdk's offline render answers every `lookup` with nothing, so these tests render
through `Config.render` (cluster-aware) against a loopback HTTP server that speaks the two
endpoints `lookup` uses: API discovery (`/api/v1`) and `GET .../secrets/<name>`. The server holds
the Secrets of a simulated existing release.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import helm_python
import pytest
from chart_objects import NAMESPACE, RELEASE, find, manifests_to_objects
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

GENERATED = {
    "site-openjip-store": {"access-key", "secret-key"},
    "site-openjip-postgresql": {"password"},
    "site-openjip-airflow": {
        "fernet-key",
        "api-secret-key",
        "jwt-secret",
        "admin-password",
        "step-token-secret",
    },
    "site-openjip-federation": {"site.key"},
    "site-openjip-federation-tls": {"tls.crt", "tls.key"},
    "site-openjip-loopback": {"secret"},
    "site-openjip-deid": {"deid.secret"},
}
DISCOVERY = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "v1",
    "resources": [
        {
            "name": "secrets",
            "singularName": "secret",
            "namespaced": True,
            "kind": "Secret",
            "verbs": ["get", "list"],
        }
    ],
}


class FakeCluster:
    """Secrets by (namespace, name) and the paths Helm asked for."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[str] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                cluster.requests.append(path)
                parts = path.strip("/").split("/")
                body: dict[str, Any] | None = None
                if path == "/api/v1":
                    body = DISCOVERY
                elif len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"]:
                    body = cluster.secrets.get((parts[3], parts[5]))
                if body is None:
                    self.reply(404, {"kind": "Status", "status": "Failure", "code": 404})
                else:
                    self.reply(200, body)

            def reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

        return Handler


@pytest.fixture
def cluster() -> Iterator[tuple[FakeCluster, helm_python.Config]]:
    fake = FakeCluster()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        with helm_python.Config(kube_apiserver=f"http://{host}:{port}", namespace=NAMESPACE) as cfg:
            yield fake, cfg
    finally:
        server.shutdown()
        server.server_close()


def render_against(
    cfg: helm_python.Config, chart: helm_python.Chart, values: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    rendered = cfg.render(chart, values or {}, name=RELEASE, namespace=NAMESPACE, is_upgrade=True)
    return manifests_to_objects(rendered)


def secret_data(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {s["metadata"]["name"]: s["data"] for s in find(objects, "Secret")}


def store(fake: FakeCluster, objects: list[dict[str, Any]]) -> None:
    """Apply the rendered Secrets to the fake cluster, as an install would."""
    for secret in find(objects, "Secret"):
        fake.secrets[(NAMESPACE, secret["metadata"]["name"])] = secret


def test_install_generates_every_secret_fresh(cluster: Any, chart: helm_python.Chart) -> None:
    fake, cfg = cluster
    first = secret_data(render_against(cfg, chart))
    second = secret_data(render_against(cfg, chart))
    assert {name: set(data) for name, data in first.items()} == GENERATED
    for name, keys in GENERATED.items():
        for key in keys:
            assert first[name][key] != second[name][key], (name, key)
    looked_up = {path.rsplit("/", 1)[1] for path in fake.requests if "/secrets/" in path}
    assert looked_up == set(GENERATED)


def test_upgrade_keeps_every_generated_value(cluster: Any, chart: helm_python.Chart) -> None:
    fake, cfg = cluster
    installed = render_against(cfg, chart)
    store(fake, installed)
    upgraded = render_against(cfg, chart, {"receiver": {"replicas": 2}})
    assert secret_data(upgraded) == secret_data(installed)


def test_upgrade_adds_only_the_keys_an_older_release_lacks(
    cluster: Any, chart: helm_python.Chart
) -> None:
    fake, cfg = cluster
    installed = render_against(cfg, chart)
    store(fake, installed)
    airflow = fake.secrets[(NAMESPACE, "site-openjip-airflow")]
    del airflow["data"]["jwt-secret"]
    upgraded = secret_data(render_against(cfg, chart))["site-openjip-airflow"]
    before = secret_data(installed)["site-openjip-airflow"]
    assert upgraded["fernet-key"] == before["fernet-key"]
    assert upgraded["admin-password"] == before["admin-password"]
    assert len(base64.b64decode(upgraded["jwt-secret"])) == 96


def test_generated_values_are_usable(cluster: Any, chart: helm_python.Chart) -> None:
    _, cfg = cluster
    data = secret_data(render_against(cfg, chart))
    fernet = base64.b64decode(data["site-openjip-airflow"]["fernet-key"])
    assert len(base64.urlsafe_b64decode(fernet)) == 32
    key = base64.b64decode(data["site-openjip-federation"]["site.key"]).decode()
    assert key.startswith("-----BEGIN PRIVATE KEY-----")
    loaded = serialization.load_pem_private_key(key.encode(), password=None)
    assert isinstance(loaded, Ed25519PrivateKey)


def test_existing_secrets_named_in_values_replace_generated_ones(render_chart: Any) -> None:
    values = {
        "minio": {"existingSecret": "site-store-keys"},
        "postgresql": {"existingSecret": "site-db"},
        "airflow": {"existingSecret": "site-airflow"},
        "federation": {"existingSecret": "site-identity", "tls": {"secretName": "site-tls"}},
        "deid": {"existingSecret": "site-deid"},
    }
    objects = render_chart(values)
    # Only the site-internal token between web and federation is still generated: no operator
    # hands it out, so there is nothing to bring.
    assert [s["metadata"]["name"] for s in find(objects, "Secret")] == ["site-openjip-loopback"]
    referenced = set()
    for obj in objects:
        text = json.dumps(obj)
        referenced |= {name for name in values_names(values) if f'"{name}"' in text}
    assert referenced == values_names(values)


def values_names(values: dict[str, Any]) -> set[str]:
    names = {section["existingSecret"] for section in values.values()}
    return names | {values["federation"]["tls"]["secretName"]}
