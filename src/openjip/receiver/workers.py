"""Several receiver processes behind one port.

The parent process runs the gate (:mod:`openjip.receiver.gate`): it accepts each TCP
connection, reads its A-ASSOCIATE-RQ and admits it, then hands it (``SCM_RIGHTS``, with the
request it read) to the worker process with the fewest open associations, so every
association runs whole in one worker and the load is even however the senders' ports hash
(``SO_REUSEPORT`` distributes by a hash of the address pair and often puts three of four
senders on one process). A worker reports each ended association back on the same channel,
which the gate watches; the connection limits therefore hold for the whole receiver. Workers
exit when the parent goes away: their end of the channel reads EOF.

The pool may start with fewer workers than it may have (``initial`` of ``count``): when a new
association finds every worker busy, one more worker is started (it takes over associations once
it reports ready), so an idle receiver keeps few ~95 MiB processes, not two per core.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import multiprocessing
import os
import signal
import socket
from typing import Any

from openjip.config import Settings
from openjip.receiver.admission import Admission, AdmissionPolicy
from openjip.receiver.gate import Gate, listen

LOGGER = logging.getLogger(__name__)

_READY = b"R"
_PIECE = 32 * 1024
"""Bytes of a handed-over A-ASSOCIATE-RQ per channel message (one message stays small)."""


class WorkerPool:
    """Worker processes plus the parent's gate."""

    def __init__(
        self, settings: Settings, count: int, *, metrics_dir: str, initial: int | None = None
    ) -> None:
        self.settings = settings
        self.count = count
        self.initial = min(count, initial or count)
        self.metrics_dir = metrics_dir
        self._context = multiprocessing.get_context("spawn")
        self._busy: list[int] = []
        self._ready: list[bool] = []
        self._address = ("", 0)
        self._channels: list[socket.socket | None] = []
        self._processes: list[Any] = []
        self._admitted: dict[int, tuple[Admission, int]] = {}
        self._policy = AdmissionPolicy(settings.receiver)
        self._gate: Gate | None = None

    def start(self) -> tuple[str, int]:
        """Start the workers, wait until each is ready, then accept; returns the address."""
        receiver = self.settings.receiver
        # Bind first: a port in use fails here, before any worker exists.
        listener = listen(receiver)
        host, port = listener.getsockname()[:2]
        self._gate = Gate(listener, self._policy, self._hand_over, settings=receiver)
        self._address = (str(host), int(port))
        try:
            for _ in range(self.initial):
                self._start_worker()
            for worker_id, channel in enumerate(self._channels):
                assert channel is not None
                if channel.recv(1) != _READY:
                    raise RuntimeError(f"receiver worker {worker_id} failed to start")
                self._ready[worker_id] = True
        except BaseException:
            self.stop()
            raise
        for worker_id, channel in enumerate(self._channels):
            assert channel is not None
            self._gate.watch(channel, functools.partial(self._ended, worker_id))
        self._gate.start()
        return self._address

    def _start_worker(self) -> int:
        """Start one more worker process (ready once it says so); its number."""
        worker_id = len(self._channels)
        previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir
        try:
            # Datagram-like: one message per send, never two merged.
            parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            process = self._context.Process(
                target=worker_main,
                args=(self.settings, self._address, child_end),
                name=f"openjip-receiver-{worker_id}",
                daemon=True,
            )
            process.start()
            child_end.close()
        finally:
            if previous is None:
                os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            else:
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
        self._channels.append(parent_end)
        self._processes.append(process)
        self._busy.append(0)
        self._ready.append(False)
        return worker_id

    def _grow(self) -> None:
        """Start another worker when every worker is busy and the pool may grow (in the gate's
        thread; the new one is watched at once and takes associations once ready)."""
        if len(self._channels) >= self.count or not all(self._ready):
            return
        live = [i for i, channel in enumerate(self._channels) if channel is not None]
        if any(self._busy[i] == 0 for i in live):
            return
        try:
            worker_id = self._start_worker()
        except OSError as exc:
            LOGGER.error("cannot start another receiver worker: %s", exc)
            return
        channel = self._channels[worker_id]
        assert channel is not None and self._gate is not None
        self._gate.watch(channel, functools.partial(self._ended, worker_id))
        LOGGER.info("receiver worker %d started: every other one is busy", worker_id)

    def stop(self) -> None:
        """Stop accepting; workers abort open associations and exit."""
        if self._gate is not None:
            self._gate.stop()
        for channel in self._channels:
            if channel is not None:
                channel.close()
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()

    def _hand_over(self, client: socket.socket, admission: Admission) -> None:
        """The gate's dispatch: to the least busy live worker (in the gate's thread)."""
        self._grow()
        with client:
            while True:
                alive = [
                    i
                    for i, channel in enumerate(self._channels)
                    if channel is not None and self._ready[i]
                ]
                if not alive:
                    raise RuntimeError("no receiver worker is alive")
                worker_id = min(alive, key=lambda i: self._busy[i])
                channel = self._channels[worker_id]
                assert channel is not None
                try:
                    _send(channel, client, admission)
                except OSError as exc:
                    LOGGER.error("receiver worker %d is gone (%s)", worker_id, exc)
                    self._worker_gone(worker_id)
                    continue
                self._busy[worker_id] += 1
                self._admitted[admission.number] = (admission, worker_id)
                return

    def _ended(self, worker_id: int) -> None:
        """A worker reported an ended association (or its channel closed)."""
        channel = self._channels[worker_id]
        if channel is None:
            return
        try:
            message = channel.recv(64)
        except OSError:
            message = b""
        if not message:
            self._worker_gone(worker_id)
            return
        if message == _READY:
            self._ready[worker_id] = True
            return
        admitted = self._admitted.pop(int(message), None)
        if admitted is not None:
            self._busy[worker_id] -= 1
            self._policy.release(admitted[0])

    def _worker_gone(self, worker_id: int) -> None:
        channel = self._channels[worker_id]
        if channel is None:
            return
        self._channels[worker_id] = None
        assert self._gate is not None
        self._gate.unwatch(channel)
        channel.close()
        for number, (admission, owner) in list(self._admitted.items()):
            if owner == worker_id:
                del self._admitted[number]
                self._policy.release(admission)


def _send(channel: socket.socket, client: socket.socket, admission: Admission) -> None:
    header = {
        "number": admission.number,
        "address": list(admission.address),
        "calling_ae": admission.calling_ae,
        "known": admission.known,
        "size": len(admission.request),
    }
    socket.send_fds(channel, [json.dumps(header).encode()], [client.fileno()])
    request = admission.request
    for offset in range(0, len(request), _PIECE):
        channel.sendall(request[offset : offset + _PIECE])


def _receive(channel: socket.socket) -> tuple[socket.socket, Admission] | None:
    message, fds, _, _ = socket.recv_fds(channel, 4096, 1)
    if not message:
        return None
    for extra in fds[1:]:
        os.close(extra)
    header = json.loads(message)
    parts, size = [], header["size"]
    while size > 0:
        part = channel.recv(_PIECE)
        if not part:
            return None
        parts.append(part)
        size -= len(part)
    if not fds:
        return None
    admission = Admission(
        (str(header["address"][0]), int(header["address"][1])),
        header["calling_ae"],
        header["known"],
        b"".join(parts),
        header["number"],
    )
    return socket.socket(fileno=fds[0]), admission


def worker_main(settings: Settings, address: tuple[str, int], channel: socket.socket) -> None:
    """Entry point of a worker process: serve every connection the parent hands over."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(message)s")
    from openjip.access.dimse import DimseAccess
    from openjip.deid.policy import ProjectPolicies
    from openjip.index import open_index
    from openjip.ingest import Ingestor
    from openjip.receiver.incoming import process_incoming_dir
    from openjip.receiver.scp import make_server
    from openjip.storage import open_store

    def ended(admission: Admission) -> None:
        with contextlib.suppress(OSError):  # the parent is gone: nobody counts any more
            channel.send(str(admission.number).encode())

    deid = ProjectPolicies.for_site(settings)
    server = make_server(
        settings.receiver,
        Ingestor(
            open_store(settings),
            open_index(settings),
            max_sequence_depth=settings.dicom.max_sequence_depth,
            policy=deid,
        ),
        process_incoming_dir(settings),
        address=address,
        on_finished=ended,
        access=DimseAccess.for_site(settings),
        export=deid,
    )
    channel.sendall(_READY)
    while True:
        try:
            received = _receive(channel)
        except OSError:
            break
        if received is None:
            break
        server.hand_over(*received)
    server.stop()
    os._exit(0)
