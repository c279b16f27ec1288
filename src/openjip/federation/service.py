"""The federation HTTP service: serves this site's signed bundles to authenticated peers,
answers ``/healthz`` and ``/metrics``, and pulls from peers periodically.

Routes: ``GET /v1/site`` (public identity), ``GET /v1/bundles`` and
``GET /v1/bundles/{workflow_id}`` (peers only, signed requests). Request bodies are capped and
refused when they look like DICOM; there is no route that takes or returns images.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from openjip import __version__
from openjip.asgi import ThreadedServer
from openjip.federation.auth import AuthenticationFailed, authenticate
from openjip.federation.errors import BundleRejected, FederationError
from openjip.federation.exchange import Exchange
from openjip.federation.guard import check_payload

log = logging.getLogger(__name__)


def create_app(exchange: Exchange) -> FastAPI:
    """The federation app of one site (its own metrics registry, so sites can share a process)."""
    registry = CollectorRegistry()
    requests = Counter(
        "openjip_federation_requests_total",
        "Requests answered by the federation service.",
        ["route", "status"],
        registry=registry,
    )
    refused = Counter(
        "openjip_federation_refused_total",
        "Requests refused, by reason (unauthenticated, unknown peer, oversized, dicom).",
        ["reason"],
        registry=registry,
    )
    app = FastAPI(title="openjip federation", version=__version__)

    @app.middleware("http")
    async def guard_and_count(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        route = (
            request.url.path
            if not request.url.path.startswith("/v1/bundles/")
            else ("/v1/bundles/{workflow_id}")
        )
        body = await request.body()
        declared = request.headers.get("content-length", "0")
        try:
            if declared.isdigit() and int(declared) > exchange.settings.max_payload_bytes:
                raise BundleRejected("oversized", "request body exceeds the size limit")
            check_payload(body, max_bytes=exchange.settings.max_payload_bytes)
            if not route.startswith(("/healthz", "/metrics", "/v1/site")):
                request.state.peer = authenticate(
                    request.headers,
                    request.method,
                    request.url.path,
                    body,
                    exchange.peers,
                    max_age_seconds=exchange.settings.request_max_age_seconds,
                )
        except BundleRejected as error:
            refused.labels(error.reason).inc()
            status = 413 if error.reason == "oversized" else 415
            response: Response = JSONResponse({"detail": str(error)}, status_code=status)
        except AuthenticationFailed as error:
            refused.labels("unauthenticated" if error.status == 401 else "unknown-peer").inc()
            exchange.audit.append(
                "request-refused", path=request.url.path, status=error.status, message=str(error)
            )
            response = JSONResponse({"detail": str(error)}, status_code=error.status)
        else:
            response = await call_next(request)
        requests.labels(route, str(response.status_code)).inc()
        return response

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            site_id = exchange.identity.site_id
        except FederationError as error:
            return JSONResponse({"status": "unavailable", "reason": str(error)}, status_code=503)
        return JSONResponse(
            {
                "status": "ok",
                "site_id": site_id,
                "published": len(exchange.outbox.summaries()),
                "pending": len(exchange.inbox.pending()),
                "peers": len(exchange.peers.entries()),
            }
        )

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/site")
    def site() -> dict[str, str]:
        identity = exchange.identity
        return {
            "site_id": identity.site_id,
            "name": identity.name,
            "public_key": identity.public_key,
        }

    @app.get("/v1/bundles")
    def bundles(request: Request) -> list[dict[str, object]]:
        exchange.audit.append("list", peer=request.state.peer.name)
        return exchange.outbox.summaries()

    @app.get("/v1/bundles/{workflow_id}")
    def bundle(workflow_id: str, request: Request) -> Response:
        try:
            raw = exchange.outbox.raw(workflow_id)
        except FederationError as error:
            return JSONResponse({"detail": str(error)}, status_code=400)
        if raw is None:
            return JSONResponse({"detail": f"no published workflow {workflow_id!r}"}, 404)
        exchange.audit.append("serve", peer=request.state.peer.name, workflow_id=workflow_id)
        return Response(raw, media_type="application/json")

    return app


class FederationService:
    """The federation app served over HTTP(S), plus a thread pulling from peers periodically."""

    name = "federation"

    def __init__(self, exchange: Exchange, *, log_level: str = "info") -> None:
        settings = exchange.settings
        self.exchange = exchange
        self.server = ThreadedServer(
            create_app(exchange),
            settings.host,
            settings.port,
            name="federation",
            log_level=log_level,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
        )
        self._stop = threading.Event()
        self._puller: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL peers use to reach this site."""
        return self.server.url

    def endpoints(self) -> list[str]:
        """Where the service answers, for people."""
        return [f"federation {self.url}/v1/bundles  {self.url}/healthz"]

    def start(self) -> None:
        """Serve, and start periodic pulls when an interval is configured."""
        self.exchange.identity  # noqa: B018 - fail at start, not at the first request, without one
        self.server.start()
        interval = self.exchange.settings.pull_interval_seconds
        if interval > 0:
            self._stop.clear()
            self._puller = threading.Thread(
                target=self._pull_periodically,
                args=(interval,),
                name="federation-pull",
                daemon=True,
            )
            self._puller.start()

    def _pull_periodically(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                for result in self.exchange.pull():
                    log.info(
                        "pull %s %s: %s %s",
                        result.peer,
                        result.workflow_id,
                        result.outcome,
                        result.message,
                    )
            except FederationError as error:
                log.warning("periodic pull failed: %s", error)

    def stop(self) -> None:
        """Stop pulling and serving."""
        self._stop.set()
        if self._puller is not None:
            self._puller.join(10)
            self._puller = None
        self.server.stop()
