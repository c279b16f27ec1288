"""The login routes of :class:`openjip.airflow.auth_manager.OpenjipAuthManager`, mounted by
Airflow under ``/auth``.

- ``GET /auth/login``: a browser that carries the web service's session cookie
  (``openjip_session``, :mod:`openjip.access.sessions`) is signed in at once — one login for the
  web service and Airflow; otherwise a form (``username``, ``password``) for openjip's own users,
  and a link to the OpenID Connect provider when one is configured. ``POST /auth/login`` sets
  Airflow's JWT cookie (``_token``) and the web service's session, and returns to ``next``.
- ``GET /auth/logout``: ends both (Airflow's UI sends its "log out" here).
- ``POST /auth/token`` (JSON or form ``username``/``password``) and ``POST /auth/token/cli``:
  ``{"access_token": ...}`` for the REST API, as Airflow's own auth managers answer.
- ``GET /auth/oidc/login`` and ``GET /auth/oidc/callback``: authorization code + PKCE with the
  provider; what must survive the round trip (state, nonce, verifier, ``next``) travels in a
  short-lived cookie signed with Airflow's JWT secret.

A user whose roles allow nothing in Airflow (an uploader, an IdP user in no mapped group) is
refused at login with 403 rather than let into an empty UI.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import time
from typing import TYPE_CHECKING, Any

import jwt
from airflow.api_fastapi.app import AUTH_MANAGER_FASTAPI_APP_PREFIX, get_cookie_path
from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
from airflow.api_fastapi.core_api.security import is_safe_url
from airflow.configuration import conf
from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from openjip.access import Action, Principal
from openjip.access.oidc import InvalidToken, LoginStart, OidcUnavailable
from openjip.access.sessions import SESSION_COOKIE
from openjip.airflow.auth_user import OpenjipUser

if TYPE_CHECKING:
    from openjip.airflow.auth_manager import OpenjipAuthManager

LOGGER = logging.getLogger(__name__)

LOGIN_COOKIE = "openjip_oidc_login"
LOGIN_SECONDS = 600
"""How long a browser may take at the identity provider."""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>openjip - sign in</title>
<style>body{{font-family:sans-serif;max-width:22rem;margin:4rem auto}}
label,input,button{{display:block;width:100%;margin:.3rem 0}}.error{{color:#b00}}</style>
</head><body><h1>openjip workflows</h1>{message}
<form method="post" action="{action}">
<input type="hidden" name="next" value="{next}">
<label>User <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password"
required></label><button type="submit">Sign in</button></form>{oidc}</body></html>
"""


def login_app(manager: OpenjipAuthManager) -> FastAPI:
    """The FastAPI sub-application Airflow mounts at ``/auth``."""
    app = FastAPI(title="openjip login", description="Sign-in for openjip's Airflow.")
    prefix = AUTH_MANAGER_FASTAPI_APP_PREFIX

    @app.get("/login", include_in_schema=False)
    async def login_page(request: Request, next: str = "") -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        who = (
            await run_in_threadpool(manager.sessions.principal, token, manager.users)
            if token
            else None
        )
        if who is not None and _may_use_airflow(who):
            return _signed_in(manager, request, who, next)  # signed in at the web service
        return _page(manager, request, next)

    @app.get("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            manager.sessions.end(token)
        response = RedirectResponse(f"{prefix}/login", 303)
        response.delete_cookie(COOKIE_NAME_JWT_TOKEN, path=get_cookie_path())
        response.delete_cookie(SESSION_COOKIE, path="/", domain=_cookie_domain(manager))
        return response

    @app.post("/login", include_in_schema=False)
    async def login_form(
        request: Request,
        username: str = Form(""),
        password: str = Form(""),
        next: str = Form(""),
    ) -> Response:
        who = await run_in_threadpool(manager.authenticate, username, password)
        if who is None:
            return _page(manager, request, next, "Unknown user or wrong password.", 401)
        if not _may_use_airflow(who):
            return _page(manager, request, next, f"{who.name} may not use workflows.", 403)
        local = await run_in_threadpool(manager.users.get, who.name)
        return _signed_in(manager, request, who, next, web_session=local is not None)

    @app.post("/token", status_code=201)
    async def token(request: Request) -> JSONResponse:
        """A JWT for the REST API from ``{"username": ..., "password": ...}``."""
        return await _token(manager, request, conf.getint("api_auth", "jwt_expiration_time"))

    @app.post("/token/cli", status_code=201)
    async def token_cli(request: Request) -> JSONResponse:
        return await _token(manager, request, conf.getint("api_auth", "jwt_cli_expiration_time"))

    @app.get("/oidc/login", include_in_schema=False)
    def oidc_login(request: Request, next: str = "") -> Response:
        provider = _provider(manager)
        try:
            start = provider.start_login(_callback_url(request, prefix))
        except OidcUnavailable as error:
            raise HTTPException(503, f"identity provider unavailable: {error}") from error
        response = RedirectResponse(start.url, status_code=303)
        response.set_cookie(
            LOGIN_COOKIE,
            _sign({**dataclasses.asdict(start), "next": next}),
            max_age=LOGIN_SECONDS,
            path=f"{prefix}/oidc",
            secure=_secure(request),
            httponly=True,
            samesite="lax",
        )
        return response

    @app.get("/oidc/callback", include_in_schema=False)
    async def oidc_callback(request: Request, code: str = "", state: str = "") -> Response:
        provider = _provider(manager)
        remembered = _unsign(request.cookies.get(LOGIN_COOKIE, ""))
        if remembered is None or not state or remembered.get("state") != state:
            raise HTTPException(400, "login expired or state does not match; sign in again")
        start = LoginStart(
            remembered["url"], remembered["state"], remembered["nonce"], remembered["code_verifier"]
        )
        try:
            who = await run_in_threadpool(
                provider.finish_login, code, start, _callback_url(request, prefix)
            )
        except InvalidToken as error:
            raise HTTPException(401, f"login refused: {error}") from error
        except OidcUnavailable as error:
            raise HTTPException(503, f"identity provider unavailable: {error}") from error
        if not _may_use_airflow(who):
            raise HTTPException(403, f"{who.name} may not use workflows at this site")
        response = _signed_in(
            manager, request, who, str(remembered.get("next", "")), web_session=True, local=False
        )
        response.delete_cookie(LOGIN_COOKIE, path=f"{prefix}/oidc")
        return response

    return app


def _may_use_airflow(who: Principal) -> bool:
    return who.can(Action.VIEW_RUNS)


async def _token(manager: OpenjipAuthManager, request: Request, seconds: int) -> JSONResponse:
    body = await _credentials(request)
    username, password = str(body.get("username", "")), str(body.get("password", ""))
    if not username or not password:
        raise HTTPException(400, "username and password must be provided")
    who = await run_in_threadpool(manager.authenticate, username, password)
    if who is None:
        raise HTTPException(401, "invalid credentials")
    if not _may_use_airflow(who):
        raise HTTPException(403, f"{who.name} may not use workflows")
    user = _user(who)
    token = manager.generate_jwt(user, expiration_time_in_seconds=seconds)
    return JSONResponse({"access_token": token}, status_code=201)


async def _credentials(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError as error:
            raise HTTPException(400, "body is not JSON") from error
        if not isinstance(body, dict):
            raise HTTPException(400, "body must be a JSON object")
        return body
    return dict(await request.form())


def _user(who: Principal) -> OpenjipUser:
    return OpenjipUser.of(who)


def _signed_in(
    manager: OpenjipAuthManager,
    request: Request,
    who: Principal,
    next_url: str,
    *,
    web_session: bool = False,
    local: bool = True,
) -> Response:
    """Airflow's token as a cookie; with ``web_session`` also the web service's session (a
    user of ``openjip user`` when ``local``, else one of the identity provider)."""
    target = next_url if next_url and is_safe_url(next_url, request=request) else ""
    response = RedirectResponse(target or conf.get("api", "base_url", fallback="/"), 303)
    response.set_cookie(
        COOKIE_NAME_JWT_TOKEN,
        manager.generate_jwt(_user(who)),
        path=get_cookie_path(),
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )
    if web_session:
        response.set_cookie(
            SESSION_COOKIE,
            manager.sessions.start(who, local=local),
            max_age=manager.site.access.session_seconds,
            path="/",
            domain=_cookie_domain(manager),
            secure=_secure(request),
            httponly=True,
            samesite="lax",
        )
    return response


def _cookie_domain(manager: OpenjipAuthManager) -> str | None:
    return manager.site.access.session_cookie_domain or None


def _page(
    manager: OpenjipAuthManager,
    request: Request,
    next_url: str,
    message: str = "",
    status: int = 200,
) -> HTMLResponse:
    prefix = AUTH_MANAGER_FASTAPI_APP_PREFIX
    oidc = ""
    if manager.oidc is not None:
        from urllib.parse import urlencode

        link = f"{prefix}/oidc/login?{urlencode({'next': next_url})}"
        oidc = (
            f'<p><a id="oidc-login" href="{html.escape(link)}">Sign in with single sign-on</a></p>'
        )
    body = _PAGE.format(
        message=f'<p class="error">{html.escape(message)}</p>' if message else "",
        action=f"{prefix}/login",
        next=html.escape(next_url),
        oidc=oidc,
    )
    return HTMLResponse(body, status_code=status)


def _provider(manager: OpenjipAuthManager) -> Any:
    if manager.oidc is None:
        raise HTTPException(404, "single sign-on is not configured (OPENJIP_ACCESS__OIDC_ISSUER)")
    return manager.oidc


def _callback_url(request: Request, prefix: str) -> str:
    base = conf.get("api", "base_url", fallback="") or str(request.base_url)
    return f"{base.rstrip('/')}{prefix}/oidc/callback"


def _secure(request: Request) -> bool:
    return request.base_url.scheme == "https" or bool(conf.get("api", "ssl_cert", fallback=""))


def _secret() -> str:
    return conf.get("api_auth", "jwt_secret")


def _sign(values: dict[str, Any]) -> str:
    return jwt.encode({**values, "exp": int(time.time()) + LOGIN_SECONDS}, _secret(), "HS256")


def _unsign(token: str) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        return dict(jwt.decode(token, _secret(), algorithms=["HS256"]))
    except jwt.PyJWTError:
        return None
