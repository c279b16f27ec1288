"""Who is calling the web service: HTTP Basic (local users), ``Bearer`` (OIDC JWTs) or the
login session cookie, else anonymous when the settings allow it, else 401 with
``WWW-Authenticate``. Routes declare what they need with :func:`require`; the decision is the
principal's (:mod:`openjip.access.roles`), never an ``if`` on role names here.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from openjip.access import DENIED, AccessAudit, Action, Principal, UserStore, anonymous_principal
from openjip.access.oidc import InvalidToken, OidcProvider, OidcUnavailable
from openjip.access.sessions import (
    LOGINS_PREFIX,
    SESSION_COOKIE,
    SessionStore,
    StoredRecords,
    StoreOf,
)
from openjip.config import Settings

REALM = "openjip"
PENDING_LOGIN_SECONDS = 600
"""How long a browser may take at the identity provider."""


class AuthenticationRequired(Exception):
    """No acceptable credentials; ``error`` is the OAuth error code for a refused token."""

    def __init__(self, message: str, *, error: str = "") -> None:
        super().__init__(message)
        self.error = error


class Forbidden(Exception):
    """Authenticated, but the principal may not do this."""


class IdentityProviderUnavailable(Exception):
    """The OIDC provider cannot be reached to check a token."""


class WebAccess:
    """Everything the web service needs to authenticate callers and record decisions."""

    def __init__(self, settings: Settings, store: StoreOf) -> None:
        self.settings = settings
        self.users = UserStore(settings.access_dir)
        self.oidc = OidcProvider(settings.access) if settings.access.oidc_issuer else None
        self.sessions = SessionStore(store, settings.access.session_seconds)
        self.pending_logins = StoredRecords(store, LOGINS_PREFIX)
        self.anonymous = anonymous_principal(settings.access)
        self.audit = AccessAudit(
            settings.access_audit_path, max_bytes=settings.access.audit_max_bytes
        )

    def basic(self, credentials: str) -> Principal:
        try:
            name, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthenticationRequired("malformed Basic credentials") from None
        found = self.users.verify(name, password)
        if found is None:
            self.audit.record(name, "authenticate", DENIED, detail="wrong user name or password")
            raise AuthenticationRequired("wrong user name or password")
        return found

    def bearer(self, token: str) -> Principal:
        if self.oidc is None:
            raise AuthenticationRequired("bearer tokens need an OIDC issuer", error="invalid_token")
        try:
            return self.oidc.principal(self.oidc.verify(token))
        except InvalidToken as refused:
            self.audit.record("unknown", "authenticate", DENIED, detail=str(refused))
            raise AuthenticationRequired(str(refused), error="invalid_token") from refused
        except OidcUnavailable as error:
            raise IdentityProviderUnavailable(str(error)) from error

    def authenticate(self, request: Request) -> Principal | None:
        """The caller's principal, ``None`` when it brought no credentials at all.

        Raises :class:`AuthenticationRequired` for credentials that are wrong.
        """
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if header:
            if scheme.lower() == "basic":
                return self.basic(value.strip())
            if scheme.lower() == "bearer":
                return self.bearer(value.strip())
            raise AuthenticationRequired(f"unsupported authorization scheme {scheme!r}")
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            return self.sessions.principal(token, self.users)
        return None


def web_access(request: Request) -> WebAccess:
    access: WebAccess = request.app.state.access
    return access


async def optional_principal(request: Request) -> Principal | None:
    """The caller if it authenticated (or anonymous access is on), else ``None``; wrong
    credentials count as none (for routes that answer everyone, such as ``/healthz``)."""
    access = web_access(request)
    try:
        found = await run_in_threadpool(access.authenticate, request)
    except (AuthenticationRequired, IdentityProviderUnavailable):
        return None
    return found or access.anonymous


async def current_principal(request: Request) -> Principal:
    """The authenticated caller; 401 without (acceptable) credentials.

    Checking a password costs argon2's time, so it runs in the thread pool, not the event loop.
    """
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    access = web_access(request)
    found = await run_in_threadpool(access.authenticate, request) or access.anonymous
    if found is None:
        raise AuthenticationRequired("credentials required")
    request.state.principal = found
    return found


def require(action: Action) -> Callable[[Request], Any]:
    """A dependency: the caller, who must be allowed ``action`` on some project (else 403)."""

    async def allowed(request: Request) -> Principal:
        found = await current_principal(request)
        if not found.can(action):
            web_access(request).audit.record(found, action, DENIED, detail=request.url.path)
            raise Forbidden(f"{found.name} may not {action.value.replace('_', ' ')}")
        return found

    return allowed


def metrics_token_matches(request: Request, token: str) -> bool:
    """Whether the request carries ``Bearer <token>`` (compared in constant time)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token)


def _wants_html(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


async def authentication_required_handler(request: Request, error: Exception) -> Response:
    """401 with the challenges this site accepts; a browser navigating is sent to /login."""
    if _wants_html(request) and not request.headers.get("authorization"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={_quote(target)}", status_code=303)
    bearer = f'Bearer realm="{REALM}"'
    if isinstance(error, AuthenticationRequired) and error.error:
        bearer += f', error="{error.error}"'
    challenges = [f'Basic realm="{REALM}", charset="UTF-8"']
    if web_access(request).oidc is not None:
        challenges.append(bearer)
    response = JSONResponse({"detail": str(error)}, status_code=401)
    for challenge in challenges:
        response.headers.append("WWW-Authenticate", challenge)
    return response


async def forbidden_handler(_: Request, error: Exception) -> Response:
    return JSONResponse({"detail": str(error)}, status_code=403)


async def provider_unavailable_handler(_: Request, error: Exception) -> Response:
    return JSONResponse(
        {"detail": f"identity provider unavailable: {error}"},
        status_code=503,
        headers={"Retry-After": "10"},
    )


ACCESS_ERROR_HANDLERS: dict[type[Exception], Callable[[Request, Exception], Any]] = {
    AuthenticationRequired: authentication_required_handler,
    Forbidden: forbidden_handler,
    IdentityProviderUnavailable: provider_unavailable_handler,
}


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")
