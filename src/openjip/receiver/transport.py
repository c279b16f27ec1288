"""What openjip changes in pynetdicom's transport for speed and safety.

- Received datasets stream into a temp file in the receiver's *incoming* directory, on the
  object store's filesystem, so storing is a rename, not a copy. A failed write (disk full)
  is remembered and answered with 0xA700 instead of aborting the association.
- Accepted sockets get ``TCP_NODELAY`` (pynetdicom never sets it; without it every response
  waits for a delayed ACK).
- A server can also take connections accepted by another process (``hand_over``).
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO

from pynetdicom import dimse_messages
from pynetdicom.transport import ThreadedAssociationServer

LOGGER = logging.getLogger(__name__)

_failed_writes: dict[str, OSError] = {}
_failed_lock = threading.Lock()
_unwritable = itertools.count()


class IncomingFile:
    """A temp file pynetdicom writes a received dataset into; write errors are kept, not
    raised, so the association survives and the C-STORE gets a proper failure status."""

    def __init__(self, directory: Path) -> None:
        self.error: OSError | None = None
        self._file: BinaryIO | None = None
        try:
            fd, self.name = _create_temp(directory)
        except OSError as exc:  # store gone, read-only or full: the C-STORE gets 0xA700
            self.name = os.path.join(directory, f"unwritable-{next(_unwritable)}.dcm")
            self._fail(exc)
            return
        self._file = os.fdopen(fd, "wb", buffering=0)

    def _fail(self, exc: OSError) -> None:
        self.error = exc
        with _failed_lock:
            _failed_writes[self.name] = exc

    @property
    def file(self) -> IncomingFile:
        """pynetdicom calls ``file.flush()``; this object is its own file."""
        return self

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of ``data`` unless an earlier write failed."""
        if self.error is None and self._file is not None:
            try:
                self._file.write(data)
            except OSError as exc:
                self._fail(exc)
        return len(data)

    def flush(self) -> None:
        """Unbuffered file: nothing to flush."""

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None:
            self._file.close()


def _create_temp(directory: Path) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(suffix=".dcm", dir=directory)
    except FileNotFoundError:
        # The directory went away (store remounted, cleaned up): make it again once.
        directory.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(suffix=".dcm", dir=directory)


def take_write_error(path: Path | str) -> OSError | None:
    """The error that spoiled the temp file at ``path``, if any (forgotten afterwards)."""
    with _failed_lock:
        return _failed_writes.pop(str(path), None)


def _incoming_file(*args: Any, **kwargs: Any) -> Any:
    """Replacement for pynetdicom's ``NamedTemporaryFile``: files go to the incoming
    directory of the server the association belongs to."""
    dul = threading.current_thread()
    server = getattr(getattr(dul, "assoc", None), "_server", None)
    directory = getattr(server, "incoming_dir", None)
    if directory is None:
        return tempfile.NamedTemporaryFile(*args, **kwargs)
    return IncomingFile(directory)


def install_incoming_files() -> None:
    """Route pynetdicom's received-dataset temp files through :func:`_incoming_file`."""
    dimse_messages.NamedTemporaryFile = _incoming_file


class ReceiverServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with ``TCP_NODELAY`` and an incoming directory.

    With ``listen=False`` it binds nothing and serves connections given to
    :meth:`hand_over` (accepted by the parent process).
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, *args: Any, incoming_dir: Path, listen: bool = True, **kwargs: Any) -> None:
        self.incoming_dir = incoming_dir
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

    def service_actions(self) -> None:
        """Nothing: pynetdicom runs a full ``gc.collect()`` here every 60 polls, which stalls
        every association of the process for tens of milliseconds."""

    def hand_over(self, client: socket.socket, address: tuple[str, int]) -> None:
        """Serve a connection accepted elsewhere, in a new thread."""
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.process_request(client, address)
