"""The federation HTTP service: serves this site's signed bundles to authenticated peers,
answers ``/healthz`` and ``/metrics``, and pulls from peers periodically.

Routes: ``GET /v1/site`` (public identity); to signed requests of peers only
``GET /v1/bundles``, ``GET /v1/bundles/{workflow_id}``, ``POST /v1/questions`` (a statistics
question) and ``GET /v1/questions/{question_id}`` (its state), and the federated-learning
rounds this site coordinates (:mod:`rounds`: ``/v1/learning/...`` for peers,
``/internal/v1/learning/...`` for the site's own aggregation task, with the loopback secret).
Request bodies are capped and refused when they look like DICOM; there is no route that takes
or returns images.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from openjip import __version__
from openjip.asgi import ThreadedServer
from openjip.federation.auth import NonceCache
from openjip.federation.errors import BundleRejected, FederationError
from openjip.federation.exchange import Exchange
from openjip.federation.gate import FederationGate, GateConfig
from openjip.federation.questions import QUESTIONS_ROUTE
from openjip.federation.refusals import RefusalTally
from openjip.federation.rounds import add_routes as add_round_routes
from openjip.federation.screening import screen_document

log = logging.getLogger(__name__)


def create_app(exchange: Exchange, refusals: RefusalTally) -> FederationGate:
    """The federation app of one site behind its gate (own metrics registry, so sites can
    share a process)."""
    settings = exchange.settings
    registry = CollectorRegistry()
    config = GateConfig(
        peers=exchange.peers,
        own_site_id=lambda: exchange.identity.site_id,
        nonces=NonceCache(settings.request_max_age_seconds, settings.replay_cache_entries),
        refusals=refusals,
        max_body_bytes=settings.max_payload_bytes,
        internal_secret=exchange.loopback.secret,
        requests=Counter(
            "openjip_federation_requests_total",
            "Requests answered by the federation service, by route template and status.",
            ["route", "status"],
            registry=registry,
        ),
        refused=Counter(
            "openjip_federation_refused_total",
            "Requests refused, by reason (unsigned, bad-signature, unknown-peer, replay, "
            "wrong-audience, oversized, dicom-payload, rate-limited, ...).",
            ["reason"],
            registry=registry,
        ),
    )
    app = FastAPI(title="openjip federation", version=__version__)

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
    def served_bundle(workflow_id: str, request: Request) -> Response:
        try:
            raw = exchange.outbox.raw(workflow_id)
        except FederationError as error:
            return JSONResponse({"detail": str(error)}, status_code=400)
        if raw is None:
            return JSONResponse({"detail": f"no published workflow {workflow_id!r}"}, 404)
        try:
            # Screened again on the way out: the index may know more patients than at publish.
            screen_document(exchange.loopback, json.loads(raw)["body"]["spec"], what="bundle")
        except BundleRejected as error:
            exchange.audit.append(
                "serve-refused",
                peer=request.state.peer.name,
                workflow_id=workflow_id,
                reason=error.reason,
                message=str(error),
            )
            return JSONResponse({"detail": str(error)}, status_code=451)
        exchange.audit.append("serve", peer=request.state.peer.name, workflow_id=workflow_id)
        return Response(raw, media_type="application/json")

    @app.post(QUESTIONS_ROUTE)
    async def ask(request: Request) -> JSONResponse:
        status, body = await run_in_threadpool(
            exchange.questions.receive, request.state.peer, await request.body()
        )
        return JSONResponse(body, status_code=status)

    @app.get(QUESTIONS_ROUTE + "/{question_id}")
    def question(question_id: str, request: Request) -> JSONResponse:
        status, body = exchange.questions.status(request.state.peer, question_id)
        return JSONResponse(body, status_code=status)

    add_round_routes(app, exchange.rounds)
    return FederationGate(app, config)


class FederationService:
    """The federation app served over HTTP(S), plus a thread pulling from peers periodically."""

    name = "federation"

    def __init__(self, exchange: Exchange, *, log_level: str = "info") -> None:
        settings = exchange.settings
        self.exchange = exchange
        self.refusals = RefusalTally(
            exchange.audit,
            interval_seconds=settings.refusal_audit_interval_seconds,
            per_address_limit=settings.refusals_per_address,
        )
        self.server = ThreadedServer(
            create_app(exchange, self.refusals),
            settings.host,
            settings.port,
            name="federation",
            log_level=log_level,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """Base URL peers use to reach this site."""
        return self.server.url

    def endpoints(self) -> list[str]:
        """Where the service answers, for people."""
        return [f"federation {self.url}/v1/bundles  {self.url}/healthz"]

    def start(self) -> None:
        """Serve, sum up refusals every interval, and pull periodically when configured."""
        self.exchange.identity  # noqa: B018 - fail at start, not at the first request, without one
        self.server.start()
        self._stop.clear()
        settings = self.exchange.settings
        loops = [
            ("federation-refusals", self._flush_refusals, settings.refusal_audit_interval_seconds)
        ]
        if settings.pull_interval_seconds > 0:
            loops.append(("federation-pull", self._pull, settings.pull_interval_seconds))
        for name, work, interval in loops:
            thread = threading.Thread(
                target=self._every, args=(interval, work), name=name, daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _every(self, interval: float, work: Callable[[], None]) -> None:
        while not self._stop.wait(interval):
            work()

    def _flush_refusals(self) -> None:
        self.refusals.flush()

    def _pull(self) -> None:
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
        """Stop pulling and serving; the last refusals are written to the audit log."""
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self._threads = []
        self.server.stop()
        self.refusals.flush()
