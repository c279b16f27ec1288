"""Bearer tokens of a real OpenID Connect provider (glewlwyd): the tokens it issues are accepted
with the roles and projects of their groups; forged, expired, wrong-audience, other-issuer,
``alg: none`` and HMAC-with-the-public-key tokens are refused; a rotated signing key is picked up
from the JWKS without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from glewlwyd import Provider, pem, rsa_key

from openjip.access import AccessAudit
from openjip.access.oidc import JWKS_REFETCH_COOLDOWN_SECONDS
from openjip.config import Settings
from openjip.web import WebService


@pytest.fixture
def web(oidc_settings: Settings) -> Iterator[WebService]:
    service = WebService(oidc_settings)
    service.start()
    yield service
    service.stop()


def _get(web: WebService, path: str, token: str) -> httpx.Response:
    return httpx.get(f"{web.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _vera(provider: Provider, **options: Any) -> dict[str, Any]:
    return provider.server.tokens("vera", "vera-password-1", ["openjip-viewer-p1"], **options)


def test_tokens_it_issues_are_accepted_with_their_groups(
    web: WebService, provider: Provider
) -> None:
    access_token = _vera(provider)["access_token"]
    me = _get(web, "/me", access_token)
    assert me.status_code == 200, me.text
    assert me.json()["name"] == "vera"
    assert (me.json()["roles"], me.json()["projects"]) == (["viewer"], ["p1"])
    assert _get(web, "/dicom-web/studies", access_token).status_code == 200
    stow = httpx.post(
        f"{web.url}/dicom-web/studies",
        headers={
            "Authorization": f"Bearer {access_token}",
            "Content-Type": 'multipart/related; type="application/dicom"; boundary=x',
        },
        content=b"--x--",
        timeout=30,
    )
    assert stow.status_code == 403

    uploader = provider.server.tokens("ulla", "ulla-password-1", ["openjip-uploader-p2"])
    me = _get(web, "/me", uploader["access_token"]).json()
    assert (me["name"], me["roles"], me["projects"]) == ("ulla", ["uploader"], ["p2"])


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def _refused_tokens(provider: Provider) -> dict[str, str]:
    real = _vera(provider)["access_token"]
    header = jwt.get_unverified_header(real)
    claims = _claims(real)
    private, public = pem(provider.server.key)
    now = int(time.time())
    signed_by_provider = {"kid": header["kid"], "typ": header.get("typ", "JWT")}
    return {
        "forged": jwt.encode(
            claims, pem(rsa_key())[0], algorithm="RS256", headers=signed_by_provider
        ),
        "expired": jwt.encode(
            {**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600},
            private,
            algorithm="RS256",
            headers=signed_by_provider,
        ),
        "not yet valid": jwt.encode(
            {**claims, "nbf": now + 3600}, private, algorithm="RS256", headers=signed_by_provider
        ),
        # A real token of the provider, asked for without our resource: its aud is the scopes.
        "wrong audience": _vera(provider, resource=None)["access_token"],
        "other issuer": jwt.encode(
            {**claims, "iss": "https://evil.example/oidc"},
            private,
            algorithm="RS256",
            headers=signed_by_provider,
        ),
        "alg none": jwt.encode(claims, None, algorithm="none", headers={"kid": header["kid"]}),
        "HS256 with the public key": _hmac_with(public, claims, header["kid"]),
        "not a JWT": "not.a.jwt",
    }


def _hmac_with(secret: str, claims: dict[str, Any], kid: str) -> str:
    """An HS256 token keyed with the provider's public key (the classic confusion attack);
    PyJWT refuses to make one from a PEM key, so it is signed by hand."""
    import base64
    import hashlib
    import hmac
    import json

    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{part(claims)}"
    mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_bad_tokens_are_refused_with_a_bearer_challenge(
    web: WebService, provider: Provider, oidc_settings: Settings
) -> None:
    for name, token in _refused_tokens(provider).items():
        response = _get(web, "/dicom-web/studies", token)
        assert response.status_code == 401, (name, response.text)
        challenges = response.headers.get_list("www-authenticate")
        assert 'Bearer realm="openjip", error="invalid_token"' in challenges, (name, challenges)
    refusals = [
        e
        for e in AccessAudit(oidc_settings.access_audit_path).entries()
        if e["action"] == "authenticate"
    ]
    assert len(refusals) == 8
    assert any("expired" in e["detail"].lower() for e in refusals)
    assert any("audience" in e["detail"].lower() for e in refusals)
    assert any("issuer" in e["detail"].lower() for e in refusals)
    assert any("'none'" in e["detail"] for e in refusals)


def test_a_rotated_signing_key_is_fetched_from_the_jwks(
    web: WebService, provider: Provider
) -> None:
    before = _vera(provider)["access_token"]
    assert _get(web, "/me", before).status_code == 200
    provider.server.rotate_key()
    after = _vera(provider)["access_token"]
    assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]
    # PyJWKClient fetches the set again for an unknown key id, at most once per cooldown (so
    # that made-up key ids cannot make it hammer the provider): wait out one cooldown at most.
    deadline = time.monotonic() + JWKS_REFETCH_COOLDOWN_SECONDS + 5
    while (answer := _get(web, "/me", after)).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert answer.status_code == 200, answer.text
    # The old key is gone from the provider's JWKS: its tokens no longer verify.
    assert _get(web, "/me", before).status_code == 401
