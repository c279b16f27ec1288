"""``create_app(settings)``: the FastAPI application of a site's web service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from openjip import __version__
from openjip.access.expiring import ExpiringTable
from openjip.config import Settings
from openjip.index import MetadataIndex
from openjip.storage import ObjectStore
from openjip.web import admin, health, images, login, metrics, statistics, steps, viewer
from openjip.web.access import ACCESS_ERROR_HANDLERS, WebAccess
from openjip.web.backends import Backends
from openjip.web.dicomweb import dicomweb_router
from openjip.web.dicomweb.errors import HANDLED_ERRORS, dicomweb_error_handler
from openjip.web.dicomweb.urls import PREFIX as DICOMWEB_PREFIX


def create_app(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    index: MetadataIndex | None = None,
) -> FastAPI:
    """The web app of a site; ``store``/``index`` default to those the settings describe.

    Backends are reachable from routers as ``request.app.state.backends`` (a :class:`Backends`),
    users, sessions and the audit as ``request.app.state.access`` (a :class:`WebAccess`).
    """
    backends = Backends(settings, store=store, index=index)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        backends.close()

    app = FastAPI(title="openjip", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.backends = backends
    app.state.access = WebAccess(settings, lambda: backends.store)
    app.state.step_inputs = ExpiringTable(steps.LISTING_SECONDS)
    app.middleware("http")(metrics.record_request)
    app.include_router(login.router)
    app.include_router(admin.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(statistics.router)
    app.include_router(dicomweb_router(), prefix=DICOMWEB_PREFIX)
    app.include_router(steps.router)
    app.include_router(viewer.router)
    app.include_router(images.router)
    for error_class in HANDLED_ERRORS:
        app.add_exception_handler(error_class, dicomweb_error_handler)
    for access_error, handler in ACCESS_ERROR_HANDLERS.items():
        app.add_exception_handler(access_error, handler)
    if settings.web.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.web.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["Content-Type", "Content-Length", "WWW-Authenticate"],
        )
    return app
