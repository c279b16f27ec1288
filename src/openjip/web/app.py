"""``create_app(settings)``: the FastAPI application of a site's web service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from openjip import __version__
from openjip.config import Settings
from openjip.index import MetadataIndex
from openjip.storage import ObjectStore
from openjip.web import health, metrics
from openjip.web.backends import Backends

DICOMWEB_PREFIX = "/dicom-web"
"""Where the DICOMweb routers (QIDO-RS, WADO-RS, STOW-RS) are mounted."""


def create_app(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    index: MetadataIndex | None = None,
) -> FastAPI:
    """The web app of a site; ``store``/``index`` default to those the settings describe.

    Backends are reachable from routers as ``request.app.state.backends`` (a :class:`Backends`).
    """
    backends = Backends(settings, store=store, index=index)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        backends.close()

    app = FastAPI(title="openjip", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.backends = backends
    app.middleware("http")(metrics.record_request)
    app.include_router(health.router)
    app.include_router(metrics.router)
    return app
