"""What openjip changes in pynetdicom's transport for speed and safety.

- Received datasets stream into a temp file (:class:`IncomingFile`) in the receiver's
  *incoming* directory, on the object store's filesystem, so storing is a rename, not a copy.
  A failed write (disk full) is remembered and answered with 0xA700 instead of aborting the
  association.
- Accepted sockets get ``TCP_NODELAY`` (pynetdicom never sets it; without it every response
  waits for a delayed ACK).
- A server can also take connections accepted by another process (``hand_over``).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pynetdicom.transport import ThreadedAssociationServer

from openjip.access import tls

if TYPE_CHECKING:
    from openjip.receiver.scp import StoreService

LOGGER = logging.getLogger(__name__)

_PIECE = 512 * 1024


class IncomingFile:
    """A temp file a received dataset is written into; write errors are kept, not raised,
    so the association survives and the C-STORE gets a proper failure status."""

    def __init__(self, directory: Path) -> None:
        self.error: OSError | None = None
        self._fd: int | None = None
        self.name = ""
        try:
            self._fd, self.name = _create_temp(directory)
        except OSError as exc:  # store gone, read-only or full: the C-STORE gets 0xA700
            self.error = exc

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data`` unless an earlier write failed."""
        if self.error is not None or self._fd is None:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.error = exc

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Close and delete the file unless it was stored (moved away) already."""
        self.close()
        if self.name:
            try:
                os.unlink(self.name)
            except FileNotFoundError:
                pass
            except OSError as exc:  # swept at the next start (service.process_incoming_dir)
                LOGGER.warning("cannot remove %s: %s", self.name, exc)


def receive(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``sock``, fewer only when the peer closed the connection; read in
    pieces of at most 512 kB, so memory follows what actually arrives, not what a (perhaps
    hostile) length field announced."""
    parts: list[bytes] = []
    while size > 0:
        data = sock.recv(min(size, _PIECE))
        if not data:
            break
        parts.append(data)
        size -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _create_temp(directory: Path) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(suffix=".dcm", dir=directory)
    except FileNotFoundError:
        # The directory went away (store remounted, cleaned up): make it again once.
        directory.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(suffix=".dcm", dir=directory)


class ReceiverServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with ``TCP_NODELAY``, and what its associations store
    C-STORE requests with: a store service and an incoming directory.

    With ``listen=False`` it binds nothing and serves connections given to
    :meth:`hand_over` (accepted by the parent process).
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        *args: Any,
        store_service: StoreService,
        incoming_dir: Path,
        listen: bool = True,
        tls_context: ssl.SSLContext | None = None,
        **kwargs: Any,
    ) -> None:
        self.store_service = store_service
        self.incoming_dir = incoming_dir
        self.tls_context = tls_context
        self._listen = listen
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        if self._listen:
            super().server_bind()

    def server_activate(self) -> None:
        if self._listen:
            super().server_activate()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        client, address = super().get_request()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection (in its own thread), after the TLS handshake if any."""
        if self.tls_context is not None:
            request = tls.accept(self.tls_context, request)
            if request is None:
                return
        super().finish_request(request, client_address)

    def service_actions(self) -> None:
        """Nothing: pynetdicom runs a full ``gc.collect()`` here every 60 polls, which stalls
        every association of the process for tens of milliseconds."""

    def hand_over(self, client: socket.socket, address: tuple[str, int]) -> None:
        """Serve a connection accepted elsewhere, in a new thread."""
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.process_request(client, address)
