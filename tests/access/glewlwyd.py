"""A real OpenID Connect provider for tests: Debian's glewlwyd on 127.0.0.1 with a temporary
SQLite database (its own schema), its webapp (login page) and an OIDC plugin signing with an RSA
key made here; configured through its admin API like an operator would.

Scopes stand in for groups (glewlwyd puts granted scopes into the ``scope`` claim), and access
tokens asked for with ``resource=AUDIENCE`` carry that audience (RFC 8707).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import secrets
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

GLEWLWYD = "/usr/bin/glewlwyd"
SCHEMA = Path("/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz")
SAMPLE_CONFIG = Path("/usr/share/doc/glewlwyd/glewlwyd.conf.sample.gz")
WEBAPP = Path("/usr/share/glewlwyd/webapp")
# The Debian package's webapp config.json is a dangling link into a directory of that name.
WEBAPP_CONFIG = Path("/etc/glewlwyd/config-2.7.json/config.json")
# The login page's libraries, from the Debian packages glewlwyd-common depends on (the webapp's
# own links to them are missing or dangling in Debian 12's package).
WEBAPP_LIBRARIES = {
    "js/jquery.min.js": "/usr/share/javascript/jquery/jquery.min.js",
    "js/popper.min.js": "/usr/share/nodejs/popper.js/dist/umd/popper.min.js",
    "js/bootstrap.min.js": "/usr/share/nodejs/bootstrap/dist/js/bootstrap.min.js",
    "css/bootstrap.min.css": "/usr/share/nodejs/bootstrap/dist/css/bootstrap.min.css",
    "css/fork-awesome.min.css": "/usr/share/fonts-fork-awesome/css/fork-awesome.css",
    "css/v5-compat.min.css": "/usr/share/fonts-fork-awesome/css/v5-compat.css",
}
ADMIN = ("admin", "password")  # what glewlwyd's schema creates
CLIENT_ID, CLIENT_SECRET = "openjip", "client-secret-for-tests"
AUDIENCE = "https://openjip.test/"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> tuple[str, str]:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Glewlwyd:
    """A running glewlwyd and how to reach it."""

    directory: Path
    port: int
    key: rsa.RSAPrivateKey
    process: subprocess.Popen[bytes] | None = None
    redirect_uris: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/api/oidc"

    @contextmanager
    def admin(self) -> Iterator[httpx.Client]:
        """A client of the admin API, logged in as glewlwyd's admin."""
        with httpx.Client(base_url=f"{self.url}/api", timeout=30) as client:
            client.post(
                "/auth/", json={"username": ADMIN[0], "password": ADMIN[1]}
            ).raise_for_status()
            yield client

    # -- set-up ------------------------------------------------------------------------------

    def start(self) -> None:
        log = (self.directory / "glewlwyd.out").open("wb")
        self.process = subprocess.Popen(
            [GLEWLWYD, f"--config-file={self.directory / 'glewlwyd.conf'}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"glewlwyd exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/auth/scheme/", timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"glewlwyd not up: {self.log_tail()}") from None
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self) -> str:
        texts = [
            path.read_text(errors="replace")[-2000:]
            for path in (self.directory / "glewlwyd.out", self.directory / "glewlwyd.log")
            if path.exists()
        ]
        return "\n".join(texts)

    def configure(self, redirect_uri: str) -> None:
        """The OIDC plugin, the openjip client and the scopes our tests use as groups."""
        with self.admin() as admin:
            plugin = {
                "module": "oidc",
                "name": "oidc",
                "display_name": "OIDC",
                "enabled": True,
                "parameters": self._plugin_parameters(self.key),
            }
            admin.post("/mod/plugin/", json=plugin).raise_for_status()
            for scope in ("openjip-viewer-p1", "openjip-uploader-p2", "openjip-admin"):
                admin.post(
                    "/scope/",
                    json={
                        "name": scope,
                        "display_name": scope,
                        "description": f"openjip group {scope}",
                        "password_required": False,
                        "password_max_age": 0,
                        "scheme": {},
                    },
                ).raise_for_status()
            self.redirect_uris = [redirect_uri]
            admin.post(
                "/client/",
                json={
                    "client_id": CLIENT_ID,
                    "name": CLIENT_ID,
                    "confidential": True,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uri": self.redirect_uris,
                    "authorization_type": ["code", "refresh_token"],
                    "scope": [
                        "openid",
                        "openjip-viewer-p1",
                        "openjip-uploader-p2",
                        "openjip-admin",
                    ],
                    "token_endpoint_auth_method": ["client_secret_basic"],
                    "resource": [AUDIENCE],
                    "enabled": True,
                },
            ).raise_for_status()

    def _plugin_parameters(self, key: rsa.RSAPrivateKey) -> dict[str, Any]:
        private, public = pem(key)
        return {
            "iss": self.issuer,
            "jwt-type": "rsa",
            "jwt-key-size": "256",
            "key": private,
            "cert": public,
            "access-token-duration": 3600,
            "refresh-token-duration": 86400,
            "code-duration": 600,
            "refresh-token-rolling": True,
            "allow-non-oidc": False,
            "auth-type-code-enabled": True,
            "auth-type-token-enabled": False,
            "auth-type-id-token-enabled": True,
            "auth-type-none-enabled": False,
            "auth-type-password-enabled": False,
            "auth-type-client-enabled": False,
            "auth-type-device-enabled": False,
            "auth-type-refresh-enabled": True,
            "pkce-allowed": True,
            "pkce-method-plain-allowed": False,
            "jwks-show": True,
            "subject-type": "public",
            "name-claim": "on-demand",
            "email-claim": "no",
            "scope-claim": "mandatory",
            "claims": [
                {
                    "name": "preferred_username",
                    "user-property": "username",
                    "type": "string",
                    "mandatory": True,
                }
            ],
            "additional-parameters": [
                {"user-parameter": "username", "token-parameter": "preferred_username"}
            ],
            "resource-allowed": True,
            "resource-scope": {"openid": [AUDIENCE]},
            "resource-client-property": "resource",
            "resource-scope-and-client-property": False,
        }

    def rotate_key(self) -> rsa.RSAPrivateKey:
        """Sign with a new key from now on (glewlwyd reloads the plugin when it is re-enabled)."""
        self.key = rsa_key()
        with self.admin() as admin:
            plugin = admin.get("/mod/plugin/oidc").json()
            plugin["parameters"] = self._plugin_parameters(self.key)
            admin.put("/mod/plugin/oidc", json=plugin).raise_for_status()
            admin.put("/mod/plugin/oidc/disable").raise_for_status()
            admin.put("/mod/plugin/oidc/enable").raise_for_status()
        return self.key

    def add_user(self, name: str, password: str, groups: list[str]) -> None:
        with self.admin() as admin:
            admin.post(
                "/user/",
                json={
                    "username": name,
                    "name": name.title(),
                    "password": password,
                    "scope": ["openid", "g_profile", *groups],
                    "enabled": True,
                },
            ).raise_for_status()

    # -- tokens ------------------------------------------------------------------------------

    def tokens(
        self, name: str, password: str, groups: list[str], *, resource: str | None = AUDIENCE
    ) -> dict[str, Any]:
        """Access and ID token of ``name`` by the authorization-code flow with PKCE, driven
        through glewlwyd's login API the way its login page does."""
        scope = " ".join(["openid", *groups])
        with httpx.Client(base_url=f"{self.url}/api", timeout=30) as user:
            user.post("/auth/", json={"username": name, "password": password}).raise_for_status()
            user.put(f"/auth/grant/{CLIENT_ID}", json={"scope": scope}).raise_for_status()
            verifier = secrets.token_urlsafe(48)
            digest = hashlib.sha256(verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            query = {
                "response_type": "code",
                "client_id": CLIENT_ID,
                "redirect_uri": self.redirect_uris[0],
                "scope": scope,
                "state": secrets.token_urlsafe(8),
                "nonce": secrets.token_urlsafe(8),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "g_continue": "",
            }
            form = {}
            if resource:
                query["resource"] = form["resource"] = resource
            answer = user.get("/oidc/auth", params=query)
            location = answer.headers.get("location", "")
            (code,) = parse_qs(urlparse(location).query).get("code") or [""]
            if not code:
                raise RuntimeError(f"no code from glewlwyd: {answer.status_code} {location}")
            token = user.post(
                "/oidc/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.redirect_uris[0],
                    "code_verifier": verifier,
                    "client_id": CLIENT_ID,
                    **form,
                },
                auth=(CLIENT_ID, CLIENT_SECRET),
            )
            token.raise_for_status()
            result: dict[str, Any] = token.json()
            return result


@dataclass
class Provider:
    """The provider of the test session and the web port its client redirects to."""

    server: Glewlwyd
    web_port: int


def start_glewlwyd(directory: Path) -> Glewlwyd:
    """A configured-from-scratch glewlwyd in ``directory`` on a free loopback port."""
    port = _free_port()
    database = directory / "glewlwyd.db"
    with sqlite3.connect(database) as conn:
        conn.executescript(gzip.decompress(SCHEMA.read_bytes()).decode())
    webapp = directory / "webapp"
    shutil.copytree(WEBAPP, webapp, symlinks=False, ignore_dangling_symlinks=True)
    shutil.rmtree(webapp / "config.json")  # copied from the package's misplaced directory
    shutil.copy(WEBAPP_CONFIG, webapp / "config.json")
    for name, source in WEBAPP_LIBRARIES.items():
        (webapp / name).unlink(missing_ok=True)
        shutil.copy(source, webapp / name)
    config = gzip.decompress(SAMPLE_CONFIG.read_bytes()).decode()
    for old, new in {
        "port=4593": f"port={port}",
        '#bind_address="127.0.0.1"': 'bind_address="127.0.0.1"',
        'external_url="http://localhost:4593"': f'external_url="http://127.0.0.1:{port}"',
        'static_files_path="/usr/share/glewlwyd/webapp/"': f'static_files_path="{webapp}/"',
        "cookie_secure=1": "cookie_secure=0",
        'cookie_domain="localhost"': 'cookie_domain="127.0.0.1"',
        'log_mode="console"': 'log_mode="file"',
        'log_file="/var/log/glewlwyd.log"': f'log_file="{directory / "glewlwyd.log"}"',
        'path = "/var/cache/glewlwyd/glewlwyd.db"': f'path = "{database}"',
    }.items():
        if old not in config:
            raise RuntimeError(f"glewlwyd's sample configuration has no {old!r}")
        config = config.replace(old, new)
    (directory / "glewlwyd.conf").write_text(config)
    server = Glewlwyd(directory, port, rsa_key())
    server.start()
    return server
