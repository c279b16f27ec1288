"""The socket of one association: reads bounded in time and in memory, and the server that
turns admitted connections into pynetdicom associations.

- :class:`TimedSocket` reads for both P-DATA readers (openjip's and pynetdicom's): no wait
  for a byte lasts longer than ``idle_timeout`` (a kernel limit on the blocking socket), no
  PDU longer than ``pdu_timeout`` from its first byte, no DIMSE message longer than
  ``message_timeout``; a peer that lets one pass is sent an A-ABORT and its connection ends
  (:class:`Stalled`). Reads go in pieces of at most 512 kB, so memory follows what actually
  arrives, not what a length field announced.
- :class:`ReceiverServer` binds nothing: the gate (:mod:`openjip.receiver.gate`) accepts
  connections, reads their A-ASSOCIATE-RQ and hands each admitted one to
  :meth:`ReceiverServer.hand_over`, which starts its association with ``TCP_NODELAY``
  (pynetdicom never sets it; without it every response waits for a delayed ACK).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

LOGGER = logging.getLogger(__name__)

_PIECE = 512 * 1024
A_ABORT = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0x02, 0x00])
"""A-ABORT PDU, source: service provider, no reason given (PS3.8 9.3.8)."""


@dataclass(frozen=True)
class Timeouts:
    """The time limits of an established association, in seconds."""

    idle: float
    pdu: float
    message: float


class Stalled(TimeoutError):
    """The peer let a time limit pass; it was sent an A-ABORT."""


def _wait_limit(sock: socket.socket, seconds: float) -> None:
    """Let the kernel end any single wait of ``sock`` (read or write) after ``seconds``
    (``SO_RCVTIMEO``/``SO_SNDTIMEO``): the socket stays blocking, so a read costs one system
    call, not Python's poll-then-read of a socket with a timeout."""
    seconds = max(seconds, 0.001)  # 0 would mean "wait for ever"
    value = struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


class TimedSocket:
    """A connected socket whose reads keep the association's time limits."""

    def __init__(self, sock: socket.socket, timeouts: Timeouts) -> None:
        self.socket = sock
        self.timeouts = timeouts
        sock.settimeout(None)
        _wait_limit(sock, timeouts.idle)
        self._pdu_deadline = float("inf")
        self._message_deadline = float("inf")
        self._shortened = False

    def pdu_started(self) -> None:
        """A PDU begins: it must be whole within ``pdu_timeout``."""
        self._pdu_deadline = time.monotonic() + self.timeouts.pdu

    def message_started(self) -> None:
        """A DIMSE message begins: it must be whole within ``message_timeout``."""
        if self._message_deadline == float("inf"):
            self._message_deadline = time.monotonic() + self.timeouts.message

    def message_ended(self) -> None:
        """The message is complete; only PDU and idle limits apply until the next."""
        self._message_deadline = float("inf")

    def recv(self, size: int) -> bytes:
        """``size`` bytes, fewer only when the peer closed the connection."""
        parts: list[bytes] = []
        while size > 0:
            self._before_wait()
            data = self._call(self.socket.recv, min(size, _PIECE))
            if not data:
                break
            parts.append(data)
            size -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def recv_into(self, buffer: memoryview) -> int:
        """Read into ``buffer``; 0 when the peer closed the connection."""
        self._before_wait()
        count: int = self._call(self.socket.recv_into, buffer)
        return count

    def sendall(self, data: bytes) -> None:
        """Send ``data``; a peer that reads nothing for ``idle_timeout`` is stalled."""
        if self._shortened:  # a read's deadline does not bound the response
            _wait_limit(self.socket, self.timeouts.idle)
            self._shortened = False
        self._call(self.socket.sendall, data)

    def _before_wait(self) -> None:
        remaining = min(self._pdu_deadline, self._message_deadline) - time.monotonic()
        if remaining <= 0:
            self._stalled(self._deadline_missed())
        if remaining < self.timeouts.idle:  # the next wait may not outlast the deadline
            _wait_limit(self.socket, remaining)
            self._shortened = True
        elif self._shortened:
            _wait_limit(self.socket, self.timeouts.idle)
            self._shortened = False

    def _deadline_missed(self) -> str:
        if self._pdu_deadline <= self._message_deadline:
            return f"PDU not complete within {self.timeouts.pdu:g} s"
        return f"DIMSE message not complete within {self.timeouts.message:g} s"

    def _call(self, read: Callable[[Any], Any], argument: Any) -> Any:
        try:
            return read(argument)
        except (BlockingIOError, TimeoutError):  # the kernel's wait limit (EAGAIN)
            # A shortened wait ended at the deadline; a full one means idle for that long.
            self._stalled(
                self._deadline_missed()
                if self._shortened
                else f"no data for {self.timeouts.idle:g} s"
            )

    def _stalled(self, reason: str) -> None:
        self.abort()
        raise Stalled(reason)

    def abort(self) -> None:
        """Send an A-ABORT, if the peer still reads; never waits long."""
        with contextlib.suppress(OSError):
            self.socket.settimeout(1.0)
            self.socket.send(A_ABORT)


class ReceiverServer(ThreadedAssociationServer):
    """pynetdicom's association server without a listening socket of its own, and what its
    associations need: a store service, an incoming directory, the time limits, which
    P-DATA reader to use, and whom to tell that an association ended (``on_finished`` with
    what the gate admitted)."""

    daemon_threads = True

    def __init__(
        self,
        *args: Any,
        store_service: Any,
        incoming_dir: Path,
        timeouts: Timeouts,
        own_pdata_reader: bool,
        on_finished: Callable[[Any], None],
        **kwargs: Any,
    ) -> None:
        self.store_service = store_service
        self.incoming_dir = incoming_dir
        self.timeouts = timeouts
        self.own_pdata_reader = own_pdata_reader
        self.on_finished = on_finished
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        """Nothing: the gate owns the listening socket."""

    def server_activate(self) -> None:
        """Nothing: the gate owns the listening socket."""

    def service_actions(self) -> None:
        """Nothing: pynetdicom runs a full ``gc.collect()`` here every 60 polls, which stalls
        every association of the process for tens of milliseconds."""

    def hand_over(self, client: socket.socket, admission: Any) -> None:
        """Start the association of an admitted connection (its A-ASSOCIATE-RQ was read by
        the gate and is in ``admission.request``)."""
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        handler: Any = self.RequestHandlerClass
        handler(client, admission.address, self, admission)

    def stop(self) -> None:
        """Abort every association of this server's AE."""
        for assoc in self.ae.active_associations:
            assoc.abort()
        self.server_close()
