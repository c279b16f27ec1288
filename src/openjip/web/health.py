"""``/healthz``: is each backend this site needs usable right now, and if not, why.

Anyone may ask (probes carry no credentials) and gets the status; the reasons per component,
which name paths and hosts, go to admins only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from openjip.access import Action, Principal
from openjip.web.access import optional_principal
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
def healthz(
    request: Request, caller: Annotated[Principal | None, Depends(optional_principal)]
) -> JSONResponse:
    """200 with ``{"status": "ok"}`` when every backend works, else 503; admins also get the
    state of each component (``"ok"`` or the reason)."""
    backends: Backends = request.app.state.backends
    components = {
        "store": _probe(lambda: backends.store.check()),
        "index": _probe(lambda: backends.index.check()),
    }
    healthy = all(state == "ok" for state in components.values())
    body: dict[str, object] = {"status": "ok" if healthy else "unavailable"}
    if caller is not None and caller.can(Action.ADMINISTER):
        body["components"] = components
    return JSONResponse(body, status_code=200 if healthy else 503)
