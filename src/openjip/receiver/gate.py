"""The gate: accepts the receiver's connections and reads each A-ASSOCIATE-RQ in one thread,
before any association thread exists.

A connection costs a socket and the bytes of its request while it negotiates: no thread,
no buffer of its own. Its request must be whole within ``association_request_timeout``;
at most ``max_negotiating`` connections negotiate at once, and at that cap a new one
pushes out the oldest of the address negotiating most (a peer that trickles requests cannot
hold the door shut). A complete request is admitted or refused by the
:class:`~openjip.receiver.admission.AdmissionPolicy`: refused ones get an A-ASSOCIATE-RJ
("rejected transient, local limit exceeded"), admitted ones go to ``dispatch`` (the
receiver's association server, here or in a worker process) with the request they sent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from openjip.access import tls
from openjip.config import ReceiverSettings
from openjip.receiver.admission import Admission, AdmissionPolicy, AssociateRequest

LOGGER = logging.getLogger(__name__)

A_ASSOCIATE_RQ = 0x01
MAX_REQUEST = 256 * 1024
"""Largest A-ASSOCIATE-RQ read (128 contexts, each with dozens of transfer syntaxes, fit)."""
_MIN_REQUEST = 74
"""PDU header, version, reserved, called and calling AE title, reserved (PS3.8 9.3.2)."""
_PDU_HEADER = struct.Struct(">BBL")
A_ASSOCIATE_RJ_LIMIT = bytes([0x03, 0, 0, 0, 0, 4, 0, 0x02, 0x03, 0x02])
"""A-ASSOCIATE-RJ: rejected-transient, service-provider (presentation), local limit exceeded."""
_READ = 64 * 1024


def listen(settings: ReceiverSettings) -> socket.socket:
    """The receiver's listening socket on ``host:port``."""
    return socket.create_server((settings.host, settings.port), backlog=128)


@dataclass
class _Negotiating:
    sock: socket.socket
    address: tuple[str, int]
    deadline: float
    data: bytearray = field(default_factory=bytearray)

    @property
    def fd(self) -> int:
        return self.sock.fileno()


class Gate:
    """The accepting thread of a receiver (see module doc)."""

    def __init__(
        self,
        listener: socket.socket,
        policy: AdmissionPolicy,
        dispatch: Callable[[socket.socket, Admission], None],
        *,
        settings: ReceiverSettings,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.listener = listener
        self.tls_context = tls_context
        """DICOM TLS: connections are wrapped at accept, their handshake runs here, within
        the request's deadline, before the request is read (see :mod:`openjip.access.tls`)."""
        self.policy = policy
        self.dispatch = dispatch
        self.request_timeout = settings.association_request_timeout
        self.max_negotiating = settings.max_negotiating
        self._selector = selectors.DefaultSelector()
        self._negotiating: dict[int, _Negotiating] = {}
        self._wake_read, self._wake_write = os.pipe()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="openjip-gate", daemon=True)

    def start(self) -> None:
        """Start accepting."""
        self.listener.setblocking(False)
        self._selector.register(self.listener, selectors.EVENT_READ, self._accept)
        self._selector.register(self._wake_read, selectors.EVENT_READ, self._drain)
        self._thread.start()

    def watch(self, sock: socket.socket, on_readable: Callable[[], None]) -> None:
        """Call ``on_readable`` in the gate's thread whenever ``sock`` has data (e.g. worker
        processes reporting ended associations); before :meth:`start` only."""
        self._selector.register(sock, selectors.EVENT_READ, lambda: on_readable())

    def unwatch(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` (in the gate's thread)."""
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)

    def stop(self) -> None:
        """Stop accepting, close the negotiating connections and the listener."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with contextlib.suppress(OSError):
            self.listener.close()
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, _ in self._selector.select(self._next_timeout()):
                    key.data()
                self._expire()
        finally:
            for pending in list(self._negotiating.values()):
                self._drop(pending)
            self._selector.close()

    def _next_timeout(self) -> float:
        if not self._negotiating:
            return 1.0
        first = min(pending.deadline for pending in self._negotiating.values())
        return max(0.0, min(1.0, first - time.monotonic()))

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self._wake_read, 4096)

    def _accept(self) -> None:
        for _ in range(64):  # a burst of connections, but the others get their turn too
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors: refuse until some are closed
                LOGGER.error("cannot accept: %s", exc)
                return
            if not self.policy.connect(address[0]):
                LOGGER.warning("connection from %s refused: too many from there", address[0])
                sock.close()
                continue
            if len(self._negotiating) >= self.max_negotiating:
                self._push_out()
            sock.setblocking(False)
            if self.tls_context is not None:
                sock = tls.wrap_accepted(self.tls_context, sock)
            pending = _Negotiating(sock, address[:2], time.monotonic() + self.request_timeout)
            self._negotiating[pending.fd] = pending
            self._selector.register(sock, selectors.EVENT_READ, lambda p=pending: self._read(p))

    def _push_out(self) -> None:
        """Close the oldest negotiating connection of the address negotiating most."""
        busiest, _ = Counter(p.address[0] for p in self._negotiating.values()).most_common(1)[0]
        oldest = min(
            (p for p in self._negotiating.values() if p.address[0] == busiest),
            key=lambda p: p.deadline,
        )
        LOGGER.warning(
            "%s pushed out: %d connections negotiating", oldest.address, len(self._negotiating)
        )
        self._drop(oldest)

    def _read(self, pending: _Negotiating) -> None:
        handshake = tls.handshake_step(pending.sock, pending.address)
        if handshake is not tls.Handshake.DONE:
            if handshake is tls.Handshake.FAILED:
                self._drop(pending)
            return
        try:
            data = tls.receive_available(pending.sock, _READ)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(pending)
            return
        pending.data += data
        if len(pending.data) < _PDU_HEADER.size:
            return
        pdu_type, _, length = _PDU_HEADER.unpack_from(pending.data)
        size = _PDU_HEADER.size + length
        if pdu_type != A_ASSOCIATE_RQ or not _MIN_REQUEST <= size <= MAX_REQUEST:
            LOGGER.warning(
                "%s sent PDU type 0x%02X of %d bytes, not an A-ASSOCIATE-RQ; closed",
                pending.address,
                pdu_type,
                size,
            )
            self._drop(pending)
            return
        if len(pending.data) >= size:
            self._complete(pending, bytes(pending.data[:size]), bytes(pending.data[size:]))

    def _complete(self, pending: _Negotiating, pdu: bytes, extra: bytes) -> None:
        self._forget(pending)
        decision = self.policy.admit(pending.address, AssociateRequest.parse(pdu), pdu + extra)
        if isinstance(decision, str):
            LOGGER.warning("association from %s rejected: %s", pending.address, decision)
            with contextlib.suppress(OSError):
                pending.sock.send(A_ASSOCIATE_RJ_LIMIT)
            self._close(pending)
            return
        pending.sock.setblocking(True)
        try:
            self.dispatch(pending.sock, decision)
        except Exception:
            LOGGER.exception("cannot hand over the association from %s", pending.address)
            self.policy.release(decision)
            with contextlib.suppress(OSError):
                pending.sock.close()

    def _expire(self) -> None:
        now = time.monotonic()
        for pending in [p for p in self._negotiating.values() if p.deadline <= now]:
            LOGGER.warning(
                "%s sent no whole A-ASSOCIATE-RQ within %g s; closed",
                pending.address,
                self.request_timeout,
            )
            self._drop(pending)

    def _forget(self, pending: _Negotiating) -> None:
        self._negotiating.pop(pending.fd, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(pending.sock)

    def _drop(self, pending: _Negotiating) -> None:
        self._forget(pending)
        self._close(pending)

    def _close(self, pending: _Negotiating) -> None:
        self.policy.disconnect(pending.address[0])
        with contextlib.suppress(OSError):
            pending.sock.close()
