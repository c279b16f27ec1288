"""Browser login: ``/login`` (a form with ``username`` and ``password`` for local users, and a
link to the OIDC provider), the provider's return at ``/login/oidc/callback`` (authorization code
+ PKCE), ``/logout`` and ``/me``. Each success starts one session cookie (random, ``HttpOnly``,
``SameSite=Lax``, ``Secure`` over HTTPS) that every page and DICOMweb route accepts, and Airflow
too; the session itself is kept in the site's object store (:mod:`openjip.access.sessions`), so it
survives restarts and is shared by every replica.
"""

from __future__ import annotations

import dataclasses
import time
from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from openjip.access import ALLOWED, DENIED, Principal
from openjip.access.oidc import InvalidToken, LoginStart, OidcUnavailable
from openjip.web.access import (
    PENDING_LOGIN_SECONDS,
    SESSION_COOKIE,
    WebAccess,
    current_principal,
    web_access,
)

router = APIRouter(tags=["login"])
CALLBACK_PATH = "/login/oidc/callback"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>openjip: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 22rem; margin: 4rem auto">
<h1>openjip</h1>{message}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<p><label>User name<br><input name="username" autocomplete="username" required></label></p>
<p><label>Password<br><input name="password" type="password" autocomplete="current-password"
required></label></p>
<p><button type="submit" id="sign-in">Sign in</button></p>
</form>{oidc}
</body></html>
"""


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/me`` (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/me"
    return target


def _page(access: WebAccess, target: str, message: str = "", status: int = 200) -> HTMLResponse:
    oidc = ""
    if access.oidc is not None:
        oidc = (
            f'<p><a id="oidc-login" href="/login/oidc?next={escape(target)}">'
            "Sign in with the identity provider</a></p>"
        )
    notice = f'<p role="alert" style="color: #a00">{escape(message)}</p>' if message else ""
    return HTMLResponse(
        _PAGE.format(message=notice, next=escape(target), oidc=oidc), status_code=status
    )


def _start_session(
    request: Request, access: WebAccess, found: Principal, target: str, *, local: bool
) -> Response:
    token = access.sessions.start(found, local=local)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=access.settings.access.session_seconds,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
        domain=access.settings.access.session_cookie_domain or None,
    )
    access.audit.record(found, "login", ALLOWED)
    return response


@router.get("/login", response_class=HTMLResponse, summary="Sign-in page")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    """The sign-in form (and the identity provider's link when OIDC is configured)."""
    return _page(web_access(request), safe_next(next))


@router.post("/login", summary="Sign in with a local user's name and password")
async def login(request: Request) -> Response:
    """Check the form's ``username``/``password``; on success start a session and redirect."""
    access = web_access(request)
    form = await request.form()
    name, password = str(form.get("username", "")), str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    found = await run_in_threadpool(access.users.verify, name, password)
    if found is None:
        access.audit.record(name, "login", DENIED, detail="wrong user name or password")
        return _page(access, target, "Wrong user name or password.", status=401)
    return _start_session(request, access, found, target, local=True)


def _callback_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + CALLBACK_PATH


@router.get("/login/oidc", summary="Sign in at the OIDC provider")
def oidc_login(request: Request, next: str | None = None) -> Response:
    """Send the browser to the provider's authorization endpoint (code flow with PKCE)."""
    access = web_access(request)
    if access.oidc is None:
        return _page(access, safe_next(next), "No identity provider is configured.", 404)
    try:
        start = access.oidc.start_login(_callback_url(request))
    except OidcUnavailable as error:
        return _page(access, safe_next(next), f"Identity provider unavailable: {error}", 503)
    access.pending_logins.put(
        start.state,
        {
            **dataclasses.asdict(start),
            "next": safe_next(next),
            "expires": time.time() + PENDING_LOGIN_SECONDS,
        },
    )
    return RedirectResponse(start.url, status_code=303)


@router.get(CALLBACK_PATH, summary="Where the OIDC provider sends the browser back")
def oidc_callback(request: Request, state: str = "", code: str = "", error: str = "") -> Response:
    """Exchange the code, verify the ID token (signature, iss, aud, exp, nonce), start a session."""
    access = web_access(request)
    pending = access.pending_logins.get(state) if state else None
    if access.oidc is None or pending is None:
        return _page(access, "/me", "This sign-in is unknown or expired; try again.", 400)
    access.pending_logins.delete(state)  # each sign-in comes back once
    target = str(pending.pop("next"))
    pending.pop("expires")
    start = LoginStart(**pending)
    if error or not code:
        return _page(access, target, f"The identity provider refused: {error or 'no code'}", 401)
    try:
        found = access.oidc.finish_login(code, start, _callback_url(request))
    except InvalidToken as refused:
        access.audit.record("unknown", "login", DENIED, detail=str(refused))
        return _page(access, target, f"Sign-in refused: {refused}", 401)
    except OidcUnavailable as unavailable:
        return _page(access, target, f"Identity provider unavailable: {unavailable}", 503)
    return _start_session(request, access, found, target, local=False)


@router.post("/logout", summary="End the session")
def logout(request: Request) -> Response:
    """Forget the session and clear its cookie."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        web_access(request).sessions.end(token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        domain=web_access(request).settings.access.session_cookie_domain or None,
    )
    return response


@router.get("/me", summary="Who the caller is")
def me(found: Annotated[Principal, Depends(current_principal)]) -> JSONResponse:
    """The caller's name, kind, roles, projects and actions (any authenticated caller)."""
    return JSONResponse(
        {
            "name": found.name,
            "kind": found.kind,
            "roles": sorted(found.roles),
            "projects": list(found.projects),
            "actions": sorted(found.actions),
        }
    )
