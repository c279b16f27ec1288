"""The federation HTTP service: peers only, signed requests (RFC 9421), small bodies, no DICOM,
TLS. The attacks of issue 15 on signed requests are here; the body-size and flood attacks are in
``test_gate.py``."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

import httpx
import pydicom.data
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from openjip.federation.auth import sign_request

REPO = Path(__file__).resolve().parents[2]
BODY_MASK_SPEC = Path(__file__).parent / "data" / "shared-body-mask.yaml"


def test_health_and_metrics_need_no_signature(make_site: Any) -> None:
    a = make_site("a")
    health = httpx.get(f"{a.url}/healthz")
    assert health.status_code == 200
    assert health.json()["site_id"] == a.exchange.identity.site_id
    metrics = httpx.get(f"{a.url}/metrics")
    assert "openjip_federation_requests_total" in metrics.text


def signed_get(caller: Any, callee: Any, path: str) -> httpx.Response:
    """``GET callee/path`` signed by ``caller`` for ``callee``."""
    url = f"{callee.url}{path}"
    headers = sign_request(caller.exchange.identity, "GET", url, callee.exchange.identity.site_id)
    return httpx.get(url, headers=headers)


def test_unsigned_requests_get_401(make_site: Any) -> None:
    a = make_site("a")
    response = httpx.get(f"{a.url}/v1/bundles")
    assert response.status_code == 401
    assert "signed request required" in response.json()["detail"]


def test_a_forged_signature_gets_401(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    url, audience = f"{a.url}/v1/bundles", a.exchange.identity.site_id
    headers = sign_request(b.exchange.identity, "GET", url, audience)
    # The same request signed by another key, sent under B's key id.
    forged = sign_request(a.exchange.identity, "GET", url, audience)
    headers["Signature"] = forged["Signature"]
    response = httpx.get(url, headers=headers)
    assert response.status_code == 401
    assert "does not verify" in response.json()["detail"]


def test_a_signature_for_another_path_gets_401(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    other = f"{a.url}/v1/bundles/other"
    headers = sign_request(b.exchange.identity, "GET", other, a.exchange.identity.site_id)
    assert httpx.get(f"{a.url}/v1/bundles", headers=headers).status_code == 401


def test_a_query_string_appended_to_a_signed_request_gets_401(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    url = f"{a.url}/v1/bundles"
    headers = sign_request(b.exchange.identity, "GET", url, a.exchange.identity.site_id)
    response = httpx.get(f"{url}?workflow=everything", headers=headers)
    assert response.status_code == 401
    assert "does not verify" in response.json()["detail"]


def test_a_replayed_request_gets_401(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    url = f"{a.url}/v1/bundles"
    headers = sign_request(b.exchange.identity, "GET", url, a.exchange.identity.site_id)
    assert httpx.get(url, headers=headers).status_code == 200
    replayed = httpx.get(url, headers=headers)
    assert replayed.status_code == 401
    assert "replayed nonce" in replayed.json()["detail"]


def test_a_request_for_one_site_is_refused_by_another_trusting_the_same_caller(
    make_site: Any,
) -> None:
    a, b, c = make_site("a"), make_site("b"), make_site("c")
    a.trust(b)
    c.trust(b)
    url = f"{a.url}/v1/bundles"
    headers = sign_request(b.exchange.identity, "GET", url, a.exchange.identity.site_id)
    a_authority = url.split("/")[2]
    # Sent to C as it is, and with A's Host header, so that C sees A's target URI.
    for extra in ({}, {"Host": a_authority}):
        response = httpx.get(f"{c.url}/v1/bundles", headers={**headers, **extra})
        assert response.status_code == 401, extra
    assert "not for this site" in response.json()["detail"]
    # The captured request was never used at A: it is still good there.
    assert httpx.get(url, headers=headers).status_code == 200


def test_an_unknown_site_gets_403(make_site: Any) -> None:
    a, stranger = make_site("a"), make_site("stranger")
    response = signed_get(stranger, a, "/v1/bundles")
    assert response.status_code == 403


def test_a_peer_lists_and_fetches_bundles(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    a.exchange.publish(BODY_MASK_SPEC)
    response = signed_get(b, a, "/v1/bundles/shared-body-mask")
    assert response.status_code == 200
    assert response.json()["body"]["workflow_id"] == "shared-body-mask"
    assert signed_get(b, a, "/v1/bundles/nope").status_code == 404


def test_bodies_carrying_dicom_or_too_large_are_refused(make_site: Any) -> None:
    a, b = make_site("a", max_payload_bytes=64 * 1024), make_site("b")
    a.trust(b)
    dicom = Path(str(pydicom.data.get_testdata_file("CT_small.dcm"))).read_bytes()
    url, audience = f"{a.url}/v1/bundles", a.exchange.identity.site_id
    headers = sign_request(b.exchange.identity, "POST", url, audience, dicom)
    assert httpx.post(url, content=dicom, headers=headers).status_code == 415
    big = b"{" + b" " * (70 * 1024) + b"}"
    headers = sign_request(b.exchange.identity, "POST", url, audience, big)
    assert httpx.post(url, content=big, headers=headers).status_code == 413


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "site-a.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_with_a_self_signed_certificate(make_site: Any, tmp_path: Path) -> None:
    cert, key = _self_signed_certificate(tmp_path)
    a = make_site("a", tls=(cert, key))
    b = make_site("b", ca_bundle=cert)
    untrusting = make_site("untrusting")
    assert a.url.startswith("https://")
    for site in (b, untrusting):
        a.trust(site)
        site.trust(a)
    a.exchange.publish(BODY_MASK_SPEC)

    assert [r.outcome for r in b.exchange.pull("a")] == ["pending"]
    (refused,) = untrusting.exchange.pull("a")
    assert refused.outcome == "unreachable"
    assert "CERTIFICATE_VERIFY_FAILED" in refused.message
