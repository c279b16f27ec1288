"""What authentication costs the web service: QIDO-RS latency (p50/p99) and STOW-RS throughput
of ``openjip web`` without credentials (anonymous on loopback, as admin), with HTTP Basic of a
local admin, with a login session cookie, with an OIDC bearer token (RS256, verified against
a JWKS this script serves on loopback), and with HTTP Basic of a viewer whose queries are
limited to one project; plus the one-time cost of checking a password (argon2id).

One site (``--studies`` studies of one CT_small instance each, half in project p1, half in p2)
is built once per run through the ingest path; each configuration runs its own ``openjip web``
process, in interleaved rounds so that load on the machine hits every configuration alike.
QIDO: ``--qido-repeat`` requests per query kind over one kept-alive connection after a warm-up.
STOW: ``--stow-instances`` single-instance requests (new UIDs) over one connection.

Usage: ``make bench`` or ``.venv/bin/python bench/auth.py [--rounds 3]``; figures go to
``bench/results/auth.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pydicom.data
from pydicom.uid import generate_uid

from openjip.access import UserStore
from openjip.access.sessions import SessionStore
from openjip.config import Settings
from openjip.index import open_index
from openjip.ingest import Ingestor
from openjip.storage import open_store
from openjip.web.dicomweb.multipart import write_multipart

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "auth.json"
OPENJIP = Path(sys.executable).with_name("openjip")
CT = Path(str(pydicom.data.get_testdata_file("CT_small.dcm")))
PASSWORD = secrets.token_urlsafe(16)
QUERIES = {
    "studies_by_patient": "/dicom-web/studies?PatientID=P{n}",
    "studies_page": "/dicom-web/studies?limit=25",
    "study_series": "/dicom-web/studies/{study}/series",
}
CONFIGURATIONS = ("anonymous", "basic_admin", "session_admin", "bearer_admin", "basic_viewer_p1")


class Issuer:
    """A minimal OpenID issuer on loopback: discovery document and JWKS of one RSA key, and
    tokens signed with it (the web service verifies them as it would Keycloak's)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        documents = {
            "/.well-known/openid-configuration": {
                "issuer": self.url,
                "jwks_uri": f"{self.url}/jwks",
            },
            "/jwks": {"keys": [{**public, "kid": "bench", "alg": "RS256", "use": "sig"}]},
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(documents.get(self.path, {})).encode()
                self.send_response(200 if self.path in documents else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return

        self.server.RequestHandlerClass = Handler
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self) -> str:
        import jwt

        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": "openjip",
            "sub": "bench",
            "preferred_username": "bench",
            "groups": ["bench-admins"],
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "bench"})

    def env(self) -> dict[str, str]:
        return {
            "OPENJIP_ACCESS__OIDC_ISSUER": self.url,
            "OPENJIP_ACCESS__OIDC_CLIENT_ID": "openjip",
            "OPENJIP_ACCESS__OIDC_GROUPS": json.dumps({"bench-admins": {"roles": ["admin"]}}),
        }


def instance(study: str, patient: str) -> bytes:
    dataset = pydicom.dcmread(CT)
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study, generate_uid()
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.PatientID = patient
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def build_site(home: Path, studies: int) -> list[str]:
    settings = Settings(home=home)
    users = UserStore(settings.access_dir)
    users.add("admin", PASSWORD, "admin")
    users.add("viewer", PASSWORD, "viewer", ["p1"])
    index = open_index(settings)
    uids = []
    try:
        ingestor = Ingestor(open_store(settings), index)
        for number in range(studies):
            study = generate_uid()
            project = "p1" if number % 2 == 0 else "p2"
            ingestor.ingest_bytes(
                instance(study, f"P{number}"), source_ae="BENCH", projects=[project]
            )
            uids.append(study)
    finally:
        index.close()
    return uids


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Web:
    """``openjip web`` in its own process for one configuration."""

    def __init__(self, home: Path, configuration: str, issuer: Issuer) -> None:
        self.issuer = issuer
        self.port = free_port()
        env = {
            **os.environ,
            "OPENJIP_HOME": str(home),
            "OPENJIP_WEB__PORT": str(self.port),
            "OPENJIP_LOG_LEVEL": "warning",
            **issuer.env(),
        }
        if configuration == "anonymous":
            env |= {
                "OPENJIP_ACCESS__ALLOW_ANONYMOUS": "true",
                "OPENJIP_ACCESS__ANONYMOUS_ROLE": "admin",
            }
        self.process = subprocess.Popen(
            [str(OPENJIP), "web"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"openjip web ({configuration}) did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, configuration: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=60)
        if configuration in ("basic_admin", "basic_viewer_p1"):
            client.auth = ("admin" if configuration == "basic_admin" else "viewer", PASSWORD)
        elif configuration == "bearer_admin":
            client.headers["Authorization"] = f"Bearer {self.issuer.token()}"
        elif configuration == "session_admin":
            answer = client.post("/login", data={"username": "admin", "password": PASSWORD})
            if answer.status_code != 303:
                raise RuntimeError(f"login failed: {answer.status_code}")
        return client

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure_qido(client: httpx.Client, studies: list[str], repeat: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    for name, template in QUERIES.items():
        times = []
        for number in range(repeat + 5):
            path = template.format(n=number % len(studies), study=studies[number % len(studies)])
            started = time.perf_counter()
            answer = client.get(path, headers={"Accept": "application/dicom+json"})
            elapsed = time.perf_counter() - started
            if answer.status_code != 200:
                raise RuntimeError(f"QIDO {path}: {answer.status_code} {answer.text[:200]}")
            if number >= 5:
                times.append(elapsed * 1000)
        samples[name] = times
    return samples


def measure_stow(client: httpx.Client, count: int) -> float:
    bodies = []
    for _ in range(count):
        boundary = uuid.uuid4().hex
        data = instance(generate_uid(), "STOW")
        body = b"".join(write_multipart([("application/dicom", [data])], boundary))
        bodies.append((body, boundary))
    started = time.perf_counter()
    for body, boundary in bodies:
        answer = client.post(
            "/dicom-web/studies",
            content=body,
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
            },
        )
        if answer.status_code != 200:
            raise RuntimeError(f"STOW: {answer.status_code} {answer.text[:200]}")
    return count / (time.perf_counter() - started)


def verification_ms(home: Path, issuer: Issuer, repeat: int = 500) -> dict[str, float]:
    """In-process cost per request of each credential check, without HTTP around it."""
    from openjip.access.oidc import OidcProvider
    from openjip.config.settings import AccessSettings

    users = UserStore(Settings(home=home).access_dir)
    users.verify("admin", PASSWORD)  # the first check is argon2's; later ones are remembered
    provider = OidcProvider(
        AccessSettings.model_validate(
            {
                "oidc_issuer": issuer.url,
                "oidc_client_id": "openjip",
                "oidc_groups": {"bench-admins": {"roles": ["admin"]}},
            }
        )
    )
    token = issuer.token()
    provider.principal(provider.verify(token))  # fetches discovery and JWKS once
    store, seconds = open_store(Settings(home=home)), Settings(home=home).access.session_seconds
    sessions = SessionStore(store, seconds)
    admin = users.verify("admin", PASSWORD)
    assert admin is not None
    session = sessions.start(admin, local=True)

    def session_from_store() -> None:
        # A process that has not read the session in the last 5 s (CACHE_SECONDS) reads it.
        SessionStore(store, seconds).principal(session, users)

    checks = {
        "basic_remembered": lambda: users.verify("admin", PASSWORD),
        "bearer_rs256": lambda: provider.principal(provider.verify(token)),
        "session_remembered": lambda: sessions.principal(session, users),
        "session_from_store": session_from_store,
    }
    figures = {}
    for name, check in checks.items():
        started = time.perf_counter()
        for _ in range(repeat):
            check()
        figures[name] = round((time.perf_counter() - started) / repeat * 1000, 3)
    return figures


def password_check_ms(home: Path) -> float:
    users = UserStore(Settings(home=home).access_dir)
    started = time.perf_counter()
    if users.verify("admin", PASSWORD) is None:
        raise RuntimeError("the admin's password does not verify")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--qido-repeat", type=int, default=200)
    parser.add_argument("--stow-instances", type=int, default=100)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="openjip-auth-bench-") as work:
        home = Path(work) / "home"
        built = time.perf_counter()
        studies = build_site(home, args.studies)
        build_seconds = time.perf_counter() - built
        qido: dict[str, dict[str, list[float]]] = {
            c: {q: [] for q in QUERIES} for c in CONFIGURATIONS
        }
        stow: dict[str, list[float]] = {c: [] for c in CONFIGURATIONS}
        issuer = Issuer()
        for _ in range(args.rounds):
            for configuration in CONFIGURATIONS:
                web = Web(home, configuration, issuer)
                client = web.client(configuration)
                try:
                    for name, times in measure_qido(client, studies, args.qido_repeat).items():
                        qido[configuration][name] += times
                    if configuration != "basic_viewer_p1":  # a viewer may not store
                        stow[configuration].append(measure_stow(client, args.stow_instances))
                finally:
                    client.close()
                    web.stop()
        argon2_ms = password_check_ms(home)
        verification = verification_ms(home, issuer)
        issuer.server.shutdown()

    report: dict[str, Any] = {
        "what": __doc__.split("\n\n")[0],
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "parameters": vars(args) | {"results": str(args.results)},
        "site_build_seconds": round(build_seconds, 1),
        "password_check_ms_uncached": round(argon2_ms, 1),
        "verification_ms_in_process": verification,
        "qido_ms": {
            configuration: {
                name: {
                    "p50": round(statistics.median(times), 2),
                    "p99": round(percentile(times, 0.99), 2),
                    "requests": len(times),
                }
                for name, times in kinds.items()
            }
            for configuration, kinds in qido.items()
        },
        "stow_instances_per_second": {
            configuration: {
                "median": round(statistics.median(rates), 1),
                "runs": [round(rate, 1) for rate in rates],
            }
            for configuration, rates in stow.items()
            if rates
        },
    }
    base = report["qido_ms"]["anonymous"]
    report["qido_p99_ratio_to_anonymous"] = {
        configuration: {
            name: round(report["qido_ms"][configuration][name]["p99"] / base[name]["p99"], 2)
            for name in QUERIES
        }
        for configuration in CONFIGURATIONS
    }
    stow_base = report["stow_instances_per_second"]["anonymous"]["median"]
    report["stow_ratio_to_anonymous"] = {
        configuration: round(figure["median"] / stow_base, 2)
        for configuration, figure in report["stow_instances_per_second"].items()
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: report[k]
                for k in (
                    "password_check_ms_uncached",
                    "qido_p99_ratio_to_anonymous",
                    "stow_instances_per_second",
                    "stow_ratio_to_anonymous",
                )
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
