"""The federation service's front door, an ASGI middleware in front of every route.

In order: an address refused too often gets 429 before anything is read (the public routes
excepted); the body is read in
chunks only up to the size cap (a ``Content-Length`` above it, or the first chunk past it, ends
the request with 413 — the rest is never read, so a 100 MB upload costs no memory); a body that
looks like DICOM gets 415; the site-internal routes (``/internal/...``, used by the site's own
tasks) need the site's loopback secret as a bearer token; every other route but ``/healthz``,
``/metrics`` and ``/v1/site`` needs a signed request of a peer (:mod:`auth`). Requests are
counted by route *template* (unknown paths as ``unmatched``) and status, refusals by reason —
label sets that cannot grow with what callers send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from starlette.datastructures import URL, Headers
from starlette.routing import Match

from openjip.federation.auth import AuthenticationFailed, NonceCache, authenticate
from openjip.federation.errors import BundleRejected
from openjip.federation.guard import check_payload
from openjip.federation.peers import PeerRegistry
from openjip.federation.refusals import RefusalTally
from openjip.statistics.loopback import is_authorized

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PUBLIC_ROUTES = frozenset({"/healthz", "/metrics", "/v1/site"})
INTERNAL_PREFIX = "/internal/"
UNMATCHED = "unmatched"


class _Refused(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class _ClientGone(Exception):
    """The caller disconnected before its body was read."""


@dataclass
class GateConfig:
    """What the gate checks requests against."""

    peers: PeerRegistry
    own_site_id: Callable[[], str]
    nonces: NonceCache
    refusals: RefusalTally
    max_body_bytes: int
    requests: Counter
    refused: Counter
    internal_secret: Path
    """The site's loopback secret, which callers of the ``/internal/`` routes present."""


class FederationGate:
    """Wraps the FastAPI app; see the module docstring for what it refuses."""

    def __init__(self, app: FastAPI, config: GateConfig) -> None:
        self.app = app
        self.config = config

    def _route_template(self, scope: Scope) -> str:
        for route in self.app.router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return str(getattr(route, "path", UNMATCHED))
        return UNMATCHED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self._route_template(scope)
        address = (scope.get("client") or ("unknown",))[0]
        status: list[int] = []

        async def counted_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            # Health probes and scrapes share addresses with callers; they are never throttled.
            if route not in PUBLIC_ROUTES and self.config.refusals.throttled(address):
                raise _Refused(429, "rate-limited", "too many refused requests; try again later")
            body = await self._read_body(scope, receive)
            self._check(scope, route, body)
        except _ClientGone:
            return
        except _Refused as refusal:
            self.config.refused.labels(refusal.reason).inc()
            self.config.refusals.record(address, refusal.reason, refusal.status)
            response = JSONResponse({"detail": str(refusal)}, status_code=refusal.status)
            # The unread rest of a refused body is dropped with the connection.
            response.headers["Connection"] = "close"
            await response(scope, receive, counted_send)
        else:
            await self.app(scope, _replay(body, receive), counted_send)
        self.config.requests.labels(route, str(status[0] if status else 0)).inc()

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.config.max_body_bytes
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _Refused(413, "oversized", f"request body exceeds the {limit}-byte limit")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(413, "oversized", f"request body exceeds the {limit}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _check(self, scope: Scope, route: str, body: bytes) -> None:
        try:
            check_payload(body, max_bytes=self.config.max_body_bytes)
        except BundleRejected as error:
            raise _Refused(415, error.reason, str(error)) from None
        if route in PUBLIC_ROUTES:
            return
        headers = Headers(scope=scope)
        if route.startswith(INTERNAL_PREFIX):
            if not is_authorized(self.config.internal_secret, headers.get("authorization")):
                raise _Refused(
                    401, "internal-unauthorized", "site-internal route: loopback secret required"
                )
            return
        try:
            scope.setdefault("state", {})["peer"] = authenticate(
                scope["method"],
                str(URL(scope=scope)),
                headers.items(),
                body,
                self.config.peers,
                own_site_id=self.config.own_site_id(),
                nonces=self.config.nonces,
            )
        except AuthenticationFailed as error:
            raise _Refused(error.status, error.reason, str(error)) from None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the caller's events."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
