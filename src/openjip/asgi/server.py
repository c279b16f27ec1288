"""``ThreadedServer``: bind a port, serve an ASGI app on it from a thread, stop cleanly."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


class ServerError(RuntimeError):
    """The server could not start (port in use, bad address, bad certificate, server failed)."""


class ThreadedServer:
    """Serves ``app`` on ``host``/``port`` (0 picks a free port), HTTPS when given a cert.

    The port is bound in :meth:`start` itself, so a port in use fails there with a clear
    :class:`ServerError` instead of inside the server thread.
    """

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        name: str = "http",
        log_level: str = "info",
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self.log_level = log_level.lower()
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the server listens on; only valid after :meth:`start`."""
        if self._socket is None:
            raise ServerError(f"the {self.name} server is not started")
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        host, port = self.address
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"

    def start(self) -> None:
        """Bind the port and return once the server accepts connections."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Accepted sockets inherit it: without, a response written in two pieces waits for
            # the client's delayed ACK (~40 ms per request).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError as error:
            sock.close()
            raise ServerError(
                f"cannot listen on {self.host}:{self.port}: {error.strerror}"
            ) from error
        self._socket = sock
        try:
            config = uvicorn.Config(
                self.app,
                log_level=self.log_level,
                access_log=False,
                lifespan="on",
                ssl_certfile=str(self.tls_cert) if self.tls_cert else None,
                ssl_keyfile=str(self.tls_key) if self.tls_key else None,
            )
            config.load()
        except (OSError, ValueError) as error:
            self._close_socket()
            raise ServerError(f"cannot configure the {self.name} server: {error}") from error
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name=f"openjip-{self.name}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not server.started:
            if not self._thread.is_alive():
                self._close_socket()
                raise ServerError(f"the {self.name} server stopped while starting (see its log)")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"the {self.name} server did not start in {START_TIMEOUT_SECONDS}s"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """Finish open requests, stop the server and release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)
        self._server = None
        self._thread = None
        self._close_socket()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
