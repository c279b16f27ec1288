"""Several receiver processes behind one port.

The parent process accepts each TCP connection and hands it (``SCM_RIGHTS``) to the worker
process with the fewest open associations, so every association runs whole in one worker and
the load is even however the senders' ports hash (``SO_REUSEPORT`` distributes by a hash of
the address pair and often puts three of four senders on one process). Workers exit when the
parent goes away: their end of the channel reads EOF.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import threading
from typing import Any

from openjip.config import Settings

LOGGER = logging.getLogger(__name__)

_READY = b"R"


class WorkerPool:
    """Worker processes plus the accepting socket and thread of the parent."""

    def __init__(self, settings: Settings, count: int, *, metrics_dir: str) -> None:
        self.settings = settings
        self.count = count
        self.metrics_dir = metrics_dir
        self._context = multiprocessing.get_context("spawn")
        self._busy: Any = self._context.Array("i", count)
        self._channels: list[socket.socket | None] = []
        self._processes: list[Any] = []
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> tuple[str, int]:
        """Start the workers, wait until each is ready, then accept; returns the address."""
        receiver = self.settings.receiver
        # Bind first: a port in use fails here, before any worker exists.
        self._listener = socket.create_server((receiver.host, receiver.port), backlog=128)
        try:
            self._start_workers()
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._accept, name="openjip-accept", daemon=True)
        self._thread.start()
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def _start_workers(self) -> None:
        previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir
        try:
            for worker_id in range(self.count):
                # Datagram-like: one connection per message, never two merged.
                parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                process = self._context.Process(
                    target=worker_main,
                    args=(self.settings, worker_id, child_end, self._busy),
                    name=f"openjip-receiver-{worker_id}",
                    daemon=True,
                )
                process.start()
                child_end.close()
                self._channels.append(parent_end)
                self._processes.append(process)
        finally:
            if previous is None:
                os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            else:
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
        for worker_id, channel in enumerate(self._channels):
            assert channel is not None
            if channel.recv(1) != _READY:
                raise RuntimeError(f"receiver worker {worker_id} failed to start")

    def stop(self) -> None:
        """Stop accepting; workers abort open associations and exit."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for channel in self._channels:
            if channel is not None:
                channel.close()
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()

    def _least_busy(self) -> int:
        with self._busy.get_lock():
            candidates = [i for i, channel in enumerate(self._channels) if channel is not None]
            if not candidates:
                raise RuntimeError("no receiver worker is alive")
            chosen = min(candidates, key=lambda i: self._busy[i])
            self._busy[chosen] += 1
            return chosen

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, address = self._listener.accept()
            except OSError:
                return  # listener shut down by stop()
            with client:
                self._hand_over(client, address)

    def _hand_over(self, client: socket.socket, address: tuple[str, int]) -> None:
        message = json.dumps(list(address[:2])).encode()
        while True:
            try:
                worker_id = self._least_busy()
            except RuntimeError:
                LOGGER.error("no receiver worker alive; dropping connection from %s", address)
                return
            channel = self._channels[worker_id]
            assert channel is not None
            try:
                socket.send_fds(channel, [message], [client.fileno()])
                return
            except OSError as exc:
                LOGGER.error("receiver worker %d is gone (%s)", worker_id, exc)
                self._channels[worker_id] = None


def worker_main(settings: Settings, worker_id: int, channel: socket.socket, busy: Any) -> None:
    """Entry point of a worker process: serve every connection the parent hands over."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(message)s")
    from openjip.access.dimse import DimseAccess
    from openjip.index import open_index
    from openjip.ingest import Ingestor
    from openjip.receiver.scp import make_server
    from openjip.receiver.service import process_incoming_dir
    from openjip.storage import open_store

    def released() -> None:
        with busy.get_lock():
            busy[worker_id] -= 1

    server = make_server(
        settings.receiver,
        Ingestor(open_store(settings), open_index(settings)),
        process_incoming_dir(settings),
        listen=False,
        on_close=released,
        access=DimseAccess.for_site(settings),
    )
    channel.sendall(_READY)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(channel, 1024, 1)
        except OSError:
            break
        if not message:
            break
        host, port = json.loads(message)
        for extra in fds[1:]:
            os.close(extra)
        if fds:
            server.hand_over(socket.socket(fileno=fds[0]), (host, port))
    for assoc in server.ae.active_associations:
        assoc.abort()
    os._exit(0)
