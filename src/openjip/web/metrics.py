"""``/metrics`` in Prometheus text format, and the web service's own request metrics.

The metrics live in prometheus-client's default registry, so a process that also runs the
receiver (``openjip site up``) exports the receiver's counters here too. On the web port
``/metrics`` needs ``Bearer`` of ``OPENJIP_WEB__METRICS_TOKEN`` or an admin; ``metrics_app`` is
the same endpoint alone, without credentials, for ``OPENJIP_WEB__METRICS_PORT``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.routing import Match

from openjip.access import Action
from openjip.web.access import Forbidden, current_principal, metrics_token_matches

router = APIRouter(tags=["metrics"])

REQUESTS = Counter(
    "openjip_web_requests_total",
    "HTTP requests answered by the web service.",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "openjip_web_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["method", "route"],
)

UNMATCHED_ROUTE = "<unmatched>"


def _route_template(request: Request) -> str:
    """The path template of the route serving ``request`` (bounded label values)."""
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", UNMATCHED_ROUTE))
    return UNMATCHED_ROUTE


async def record_request(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """HTTP middleware counting each request and timing it by route."""
    route = _route_template(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        REQUEST_SECONDS.labels(request.method, route).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, route, str(status)).inc()


def _exposition() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    """Every metric of this process in the Prometheus text exposition format."""
    token = request.app.state.settings.web.metrics_token.get_secret_value()
    if not metrics_token_matches(request, token):
        caller = await current_principal(request)
        if not caller.can(Action.ADMINISTER):
            raise Forbidden("/metrics needs the metrics token or an admin")
    return _exposition()


def metrics_app() -> FastAPI:
    """An app serving only ``/metrics``, without credentials (for its own port)."""
    app = FastAPI(title="openjip metrics", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_api_route("/metrics", _exposition, methods=["GET"], summary="Prometheus metrics")
    return app
