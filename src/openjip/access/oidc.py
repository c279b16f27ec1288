"""OpenID Connect: verify an issuer's JWTs and map their claims to a :class:`Principal`, and
the authorization-code + PKCE steps of a browser login.

Verification is PyJWT's: the key comes from the issuer's JWKS (``PyJWKClient``, which fetches
the set again when a token names an unknown key id, so key rotation needs no restart);
``iss``, ``aud``, ``exp`` and ``nbf`` are checked; only asymmetric algorithms are accepted, so
neither ``alg: none`` nor an HMAC "signed" with the public key gets through.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from openjip.access.roles import Principal, principal
from openjip.config.settings import AccessSettings

ACCEPTED_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
"""Signature algorithms of a public key; HS* (shared secret) and ``none`` are refused."""
JWKS_REFETCH_COOLDOWN_SECONDS = 5.0


class InvalidToken(Exception):
    """A token that is not accepted; the message says why (without the token)."""


class OidcUnavailable(Exception):
    """The identity provider cannot be reached or answered nonsense."""


@dataclass(frozen=True)
class LoginStart:
    """What a browser login needs to remember until the provider sends the user back."""

    url: str
    state: str
    nonce: str
    code_verifier: str


class OidcProvider:
    """One OpenID Connect issuer as the settings describe it."""

    def __init__(self, settings: AccessSettings) -> None:
        if not settings.oidc_issuer:
            raise ValueError("OIDC is off: OPENJIP_ACCESS__OIDC_ISSUER is empty")
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.audience = settings.oidc_audience or settings.oidc_client_id
        self._metadata: dict[str, Any] | None = None
        self._jwks: Any = None
        self._lock = threading.Lock()

    # -- discovery -----------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document (fetched once); its ``issuer`` must be ours."""
        with self._lock:
            if self._metadata is None:
                document = _get_json(f"{self.issuer}/.well-known/openid-configuration")
                if str(document.get("issuer", "")).rstrip("/") != self.issuer:
                    raise OidcUnavailable(
                        f"discovery document of {self.issuer} names issuer "
                        f"{document.get('issuer')!r}"
                    )
                self._metadata = document
            return self._metadata

    def _signing_key(self, token: str) -> Any:
        from jwt import PyJWKClient, PyJWKClientError
        from jwt.exceptions import PyJWKClientConnectionError

        if self._jwks is None:
            jwks_uri = self.metadata().get("jwks_uri")
            if not jwks_uri:
                raise OidcUnavailable(f"discovery document of {self.issuer} has no jwks_uri")
            with self._lock:
                self._jwks = self._jwks or PyJWKClient(
                    jwks_uri, timeout=10, cooldown_duration=JWKS_REFETCH_COOLDOWN_SECONDS
                )
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except PyJWKClientConnectionError as error:
            raise OidcUnavailable(f"cannot fetch the JWKS of {self.issuer}: {error}") from error
        except (PyJWKClientError, ValueError) as error:
            raise InvalidToken(f"no key of the issuer signs this token: {error}") from error

    # -- tokens --------------------------------------------------------------------------------

    def verify(
        self, token: str, *, audience: str | None = None, nonce: str | None = None
    ) -> dict[str, Any]:
        """The claims of ``token`` once signature, ``iss``, ``aud``, ``exp`` and ``nbf`` check."""
        import jwt

        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as error:
            raise InvalidToken(f"not a JWT: {error}") from error
        if algorithm not in ACCEPTED_ALGORITHMS:
            raise InvalidToken(f"signature algorithm {algorithm!r} is not accepted")
        key = self._signing_key(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=audience or self.audience,
                issuer=self.issuer,
                leeway=self.settings.oidc_leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(f"token refused: {error}") from error
        if nonce is not None and claims.get("nonce") != nonce:
            raise InvalidToken("token refused: nonce does not match the login")
        return claims

    def principal(self, claims: dict[str, Any]) -> Principal:
        """The user the claims describe, with the roles and projects of its groups."""
        name = str(claims.get(self.settings.oidc_username_claim) or claims.get("sub") or "")
        if not name:
            raise InvalidToken("token names no user (no username claim, no sub)")
        groups = claims.get(self.settings.oidc_groups_claim) or []
        if isinstance(groups, str):
            groups = groups.split()
        roles: list[str] = []
        projects: list[str] = []
        for group in groups:
            grant = self.settings.oidc_groups.get(str(group).lstrip("/"))
            if grant is not None:
                roles += grant.roles
                projects += grant.projects
        return principal(name, "user", roles, projects)

    # -- browser login (authorization code + PKCE) ---------------------------------------------

    def start_login(self, redirect_uri: str) -> LoginStart:
        """Where to send the browser, with fresh state, nonce and PKCE verifier."""
        endpoint = self.metadata().get("authorization_endpoint")
        if not endpoint:
            raise OidcUnavailable(f"{self.issuer} has no authorization_endpoint")
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = {
            "response_type": "code",
            "client_id": self.settings.oidc_client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.settings.oidc_scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        return LoginStart(f"{endpoint}?{urlencode(query)}", state, nonce, verifier)

    def finish_login(self, code: str, start: LoginStart, redirect_uri: str) -> Principal:
        """Exchange the code (with the PKCE verifier) and return the ID token's user."""
        import httpx

        endpoint = self.metadata().get("token_endpoint")
        if not endpoint:
            raise OidcUnavailable(f"{self.issuer} has no token_endpoint")
        secret = self.settings.oidc_client_secret.get_secret_value()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": start.code_verifier,
            "client_id": self.settings.oidc_client_id,
        }
        auth = (self.settings.oidc_client_id, secret) if secret else None
        try:
            response = httpx.post(endpoint, data=form, auth=auth, timeout=10)
        except httpx.HTTPError as error:
            raise OidcUnavailable(f"token endpoint of {self.issuer}: {error}") from error
        if response.status_code != 200:
            raise InvalidToken(f"the provider refused the code: {response.text[:200]}")
        id_token = response.json().get("id_token")
        if not id_token:
            raise InvalidToken("the provider's answer has no id_token")
        claims = self.verify(id_token, audience=self.settings.oidc_client_id, nonce=start.nonce)
        return self.principal(claims)


def _get_json(url: str) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.get(url, timeout=10)
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise OidcUnavailable(f"{url}: {error}") from error
    if not isinstance(document, dict):
        raise OidcUnavailable(f"{url}: not a JSON object")
    return document
