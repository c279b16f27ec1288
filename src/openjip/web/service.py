"""``WebService``: the site's web app served from a background thread (a site component)."""

from __future__ import annotations

from fastapi import FastAPI

from openjip.asgi import ThreadedServer
from openjip.config import Settings
from openjip.web.app import DICOMWEB_PREFIX, create_app
from openjip.web.viewer import BASE as VIEWER_BASE


class WebService:
    """Serves :func:`create_app` on ``settings.web.host``/``port`` (0 picks a free port).

    A port in use fails in :meth:`start` with :class:`openjip.asgi.ServerError`.
    """

    name = "web"

    def __init__(self, settings: Settings, app: FastAPI | None = None) -> None:
        self.settings = settings
        self.app = app if app is not None else create_app(settings)
        self._server = ThreadedServer(
            self.app,
            settings.web.host,
            settings.web.port,
            name="web",
            log_level=settings.log_level,
        )

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the service listens on; only valid after :meth:`start`."""
        return self._server.address

    @property
    def url(self) -> str:
        """Base URL of the service."""
        return self._server.url

    def start(self) -> None:
        """Bind the port and return once the service accepts connections."""
        self._server.start()

    def stop(self) -> None:
        """Finish open requests, stop serving and release the port."""
        self._server.stop()

    def endpoints(self) -> list[str]:
        """Where the service answers, one line each."""
        return [
            f"web        {self.url}/healthz  {self.url}/metrics",
            f"DICOMweb   {self.url}{DICOMWEB_PREFIX}",
            f"viewer     {self.url}{VIEWER_BASE}",
        ]
