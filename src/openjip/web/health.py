"""``/healthz``: is each backend this site needs usable right now, and if not, why."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from openjip.web.backends import Backends

router = APIRouter(tags=["health"])


def _probe(check: Callable[[], None]) -> str:
    """``"ok"`` or the reason the check failed."""
    try:
        check()
    # A health check must report every failure of a backend (driver errors, OS errors, bugs)
    # as a reason in its answer instead of failing the request itself.
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return "ok"


@router.get("/healthz", summary="Health of the store and the index")
def healthz(request: Request) -> JSONResponse:
    """200 with ``{"status": "ok", ...}`` when every backend works, else 503 with the reasons."""
    backends: Backends = request.app.state.backends
    components = {
        "store": _probe(lambda: backends.store.check()),
        "index": _probe(lambda: backends.index.check()),
    }
    healthy = all(state == "ok" for state in components.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "components": components},
        status_code=200 if healthy else 503,
    )
