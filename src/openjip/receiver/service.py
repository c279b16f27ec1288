"""``ReceiverService``: the DICOM receiver of a site, in one process or several.

This process always runs the gate (:mod:`openjip.receiver.gate`), which accepts and admits
connections. With ``receiver.workers`` = 1 the associations run here too; with more, each
goes to the least busy worker process (see :mod:`openjip.receiver.workers`). The completion
sweep, its listeners and the metrics endpoint always run here.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

import openjip.receiver.metrics as metrics
from openjip.access import tls
from openjip.access.dimse import DimseAccess, check_not_open
from openjip.config import Settings
from openjip.deid.policy import ProjectPolicies
from openjip.index import MetadataIndex, open_index
from openjip.ingest import Ingestor
from openjip.receiver.admission import AdmissionPolicy
from openjip.receiver.gate import Gate, listen
from openjip.receiver.incoming import process_incoming_dir
from openjip.receiver.scp import make_server
from openjip.receiver.series_complete import EVENTS_FILE, JsonlEventLog, SeriesCompleteListener
from openjip.receiver.sweeper import CompletionSweeper
from openjip.receiver.transport import ReceiverServer
from openjip.receiver.workers import WorkerPool
from openjip.storage import ObjectStore, open_store

LOGGER = logging.getLogger(__name__)


def default_workers() -> int:
    """Two receiver processes per CPU core this process may run on: associations in one
    process take turns on its interpreter lock, and an instance spends much of its time
    waiting for the disk, so two per core store more per second than one (measured with four
    senders on two cores: 2-9 % more)."""
    return 2 * len(os.sched_getaffinity(0))


INITIAL_WORKERS = 2
"""Receiver processes an automatically sized receiver starts with (more when all are busy):
two take four senders at nearly the speed of four processes, and an idle site keeps ~190 MiB
less than with two per core on two cores (more on larger machines)."""


def default_listeners(settings: Settings) -> list[SeriesCompleteListener]:
    """Listeners every site has: the JSONL event log under ``OPENJIP_HOME``."""
    return [
        JsonlEventLog(
            settings.home_dir / EVENTS_FILE, max_bytes=settings.receiver.event_log_max_bytes
        )
    ]


class ReceiverService:
    """The receiver: C-ECHO/C-STORE on ``receiver.host:port``, completion sweep, metrics."""

    def __init__(
        self, settings: Settings, listeners: Sequence[SeriesCompleteListener] = ()
    ) -> None:
        self.settings = settings
        self.listeners = [*default_listeners(settings), *listeners]
        configured = settings.receiver.workers
        self.workers = tls.processes(settings.receiver, configured or default_workers())
        self._store: ObjectStore | None = None
        self._index: MetadataIndex | None = None
        self._server: ReceiverServer | None = None
        self._gate: Gate | None = None
        self._pool: WorkerPool | None = None
        self._sweeper: CompletionSweeper | None = None
        self._metrics_server: Any = None
        self._metrics_dir: str | None = None
        self._address: tuple[str, int] | None = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the receiver listens on (after :meth:`start`)."""
        if self._address is None:
            raise RuntimeError("the receiver is not started")
        return self._address

    @property
    def index(self) -> MetadataIndex:
        """The index this process sweeps (after :meth:`start`)."""
        if self._index is None:
            raise RuntimeError("the receiver is not started")
        return self._index

    def start(self) -> None:
        """Open store and index, start listening; returns once connections are accepted."""
        settings = self.settings
        check_not_open(settings.receiver)
        self._store = open_store(settings)
        self._index = open_index(settings)
        try:
            self._store.check()
            self._listen()
        except BaseException:
            self._address = None
            self._shutdown()  # whatever did start (server, workers, metrics) stops again
            raise

    def _listen(self) -> None:
        settings = self.settings
        assert self._store is not None and self._index is not None
        if self.workers == 1:
            listener = listen(settings.receiver)
            host, port = listener.getsockname()[:2]
            policy = AdmissionPolicy(settings.receiver)
            deid = ProjectPolicies.for_site(settings)
            self._server = make_server(
                settings.receiver,
                Ingestor(
                    self._store,
                    self._index,
                    max_sequence_depth=settings.dicom.max_sequence_depth,
                    policy=deid,
                ),
                process_incoming_dir(settings),
                address=(host, port),
                on_finished=policy.release,
                access=DimseAccess.for_site(settings),
                export=deid,
            )
            self._gate = Gate(
                listener,
                policy,
                self._server.hand_over,
                settings=settings.receiver,
                tls_context=tls.server_context(settings.receiver),
            )
            self._gate.start()
            registry = metrics.REGISTRY
        else:
            self._metrics_dir = tempfile.mkdtemp(prefix="openjip-metrics-")
            # Sized to the load unless the number is set: two, more when all are busy.
            self._pool = WorkerPool(
                settings,
                self.workers,
                metrics_dir=self._metrics_dir,
                initial=None if settings.receiver.workers else INITIAL_WORKERS,
            )
            host, port = self._pool.start()
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self._metrics_dir)
        self._address = (str(host), int(port))
        if settings.receiver.metrics_port:
            self._metrics_server, _ = start_http_server(
                settings.receiver.metrics_port, addr=settings.receiver.host, registry=registry
            )
        self._sweeper = CompletionSweeper(
            self._index,
            self.listeners,
            idle_seconds=settings.receiver.series_idle_seconds,
            interval=settings.receiver.sweep_interval_seconds,
        )
        self._sweeper.start()
        LOGGER.info(
            "receiver %s listening on %s:%d (%d process%s)",
            settings.receiver.ae_title,
            host,
            port,
            self.workers,
            "" if self.workers == 1 else "es",
        )

    def stop(self) -> None:
        """Stop accepting, end open associations, stop the sweep and the workers."""
        with self._stop_lock:
            if self._address is None:
                return
            self._address = None
            self._shutdown()
        self._stopped.set()

    def _shutdown(self) -> None:
        if self._sweeper is not None:
            self._sweeper.stop()
        if self._gate is not None:
            self._gate.stop()
            self._gate = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._pool is not None:
            self._pool.stop()
            self._pool = None
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        if self._index is not None:
            self._index.close()
        if self._metrics_dir is not None:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
            self._metrics_dir = None

    def serve_forever(self) -> None:
        """Start and serve until SIGTERM/SIGINT (in the main thread) or :meth:`stop`."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: self._stopped.set())
        self.start()
        try:
            self._stopped.wait()
        finally:
            self.stop()
