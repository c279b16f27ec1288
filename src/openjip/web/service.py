"""``WebService``: the site's web app served from a background thread (a site component), and
``/metrics`` alone on its own port when ``OPENJIP_WEB__METRICS_PORT`` is set."""

from __future__ import annotations

from fastapi import FastAPI

from openjip.access import refuse_open_binding
from openjip.asgi import ThreadedServer
from openjip.config import Settings
from openjip.web.app import DICOMWEB_PREFIX, create_app
from openjip.web.metrics import metrics_app
from openjip.web.viewer import BASE as VIEWER_BASE


class WebService:
    """Serves :func:`create_app` on ``settings.web.host``/``port`` (0 picks a free port).

    A port in use fails in :meth:`start` with :class:`openjip.asgi.ServerError`; anonymous
    access on a non-loopback address with :class:`openjip.access.OpenAccessRefused`.
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
        self._metrics_server = (
            ThreadedServer(
                metrics_app(),
                settings.web.host,
                settings.web.metrics_port,
                name="web metrics",
                log_level=settings.log_level,
            )
            if settings.web.metrics_port
            else None
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
        """Bind the port(s) and return once the service accepts connections."""
        refuse_open_binding(self.settings.access, self.settings.web.host, "the web service")
        self._server.start()
        if self._metrics_server is not None:
            self._metrics_server.start()

    def stop(self) -> None:
        """Finish open requests, stop serving and release the port(s)."""
        if self._metrics_server is not None:
            self._metrics_server.stop()
        self._server.stop()

    def endpoints(self) -> list[str]:
        """Where the service answers, one line each."""
        lines = [
            f"web        {self.url}/healthz  {self.url}/metrics  {self.url}/login",
            f"DICOMweb   {self.url}{DICOMWEB_PREFIX}",
            f"viewer     {self.url}{VIEWER_BASE}",
        ]
        if self._metrics_server is not None:
            lines.append(f"metrics    {self._metrics_server.url}/metrics")
        return lines
