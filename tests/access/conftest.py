"""Fixtures of the access tests: a real OIDC provider (glewlwyd) for the whole session, the
settings of a web service that trusts it, and a PKI for DICOM TLS."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The tests import glewlwyd, tls_pki and the query/retrieve tests' dcmtk peers (pytest's
# importlib mode puts no test folder on sys.path).
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "query_retrieve"))

from glewlwyd import AUDIENCE, CLIENT_ID, CLIENT_SECRET, Provider, start_glewlwyd
from pydantic import SecretStr
from tls_pki import Pki, make_pki

from openjip.config import Settings
from openjip.config.settings import OidcGrant

GROUPS = {
    "openjip-viewer-p1": OidcGrant(roles=["viewer"], projects=["p1"]),
    "openjip-uploader-p2": OidcGrant(roles=["uploader"], projects=["p2"]),
    "openjip-admin": OidcGrant(roles=["admin"]),
}


@pytest.fixture(scope="session")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        web_port = int(probe.getsockname()[1])
    server = start_glewlwyd(tmp_path_factory.mktemp("glewlwyd"))
    try:
        server.configure(f"http://127.0.0.1:{web_port}/login/oidc/callback")
        server.add_user("vera", "vera-password-1", ["openjip-viewer-p1"])
        server.add_user("ulla", "ulla-password-1", ["openjip-uploader-p2"])
        yield Provider(server, web_port)
    finally:
        server.stop()


@pytest.fixture
def oidc_settings(settings: Settings, provider: Provider) -> Settings:
    """``settings`` of a web service that trusts ``provider`` (scopes as groups)."""
    access = settings.access
    access.oidc_issuer = provider.server.issuer
    access.oidc_client_id = CLIENT_ID
    access.oidc_client_secret = SecretStr(CLIENT_SECRET)
    access.oidc_audience = AUDIENCE
    access.oidc_groups_claim = "scope"
    access.oidc_groups = GROUPS
    access.oidc_scopes = ["openid", *GROUPS]  # glewlwyd grants groups as scopes
    access.oidc_leeway_seconds = 0
    settings.web.port = provider.web_port
    return settings


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """CA ``test-ca``; ``site`` (openjip) and ``peer`` (dcmtk) certificates for 127.0.0.1."""
    return make_pki(tmp_path_factory.mktemp("pki"))
