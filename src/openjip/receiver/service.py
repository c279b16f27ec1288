"""``ReceiverService``: the DICOM receiver of a site, in one process or several.

With ``receiver.workers`` = 1 everything runs in this process. With more, this process
accepts connections and hands each to the least busy worker process (see
:mod:`openjip.receiver.workers`); the completion sweep, the hooks and the metrics endpoint
always run here.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from openjip.access.dimse import DimseAccess, check_not_open
from openjip.config import Settings
from openjip.index import MetadataIndex, open_index
from openjip.ingest import Ingestor
from openjip.receiver import metrics
from openjip.receiver.hooks import EVENTS_FILE, JsonlEventLog, SeriesCompleteHook
from openjip.receiver.scp import make_server
from openjip.receiver.sweeper import CompletionSweeper
from openjip.receiver.transport import ReceiverServer
from openjip.storage import ObjectStore, open_store

LOGGER = logging.getLogger(__name__)


def incoming_root(settings: Settings) -> Path:
    """Where received datasets are written before they are stored.

    For the local store this is inside its root (same filesystem, so storing is a rename;
    the ``~`` keeps it out of every listing); otherwise under ``OPENJIP_HOME``.
    """
    if settings.storage.backend == "local":
        return settings.storage_path / "~incoming"
    return settings.home_dir / "incoming"


def process_incoming_dir(settings: Settings) -> Path:
    """This process's own incoming directory; leftovers of dead processes are removed."""
    root = incoming_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        if entry.name.isdigit() and not _alive(int(entry.name)):
            shutil.rmtree(entry, ignore_errors=True)
    directory = root / str(os.getpid())
    directory.mkdir(exist_ok=True)
    return directory


def default_workers() -> int:
    """Two receiver processes per CPU core this process may run on: associations in one
    process take turns on its interpreter lock, and an instance spends much of its time
    waiting for the disk, so two per core store more per second than one (measured with four
    senders on two cores: 2-9 % more)."""
    return 2 * len(os.sched_getaffinity(0))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_hooks(settings: Settings) -> list[SeriesCompleteHook]:
    """Hooks every site has: the JSONL event log under ``OPENJIP_HOME``."""
    return [
        JsonlEventLog(
            settings.home_dir / EVENTS_FILE, max_bytes=settings.receiver.event_log_max_bytes
        )
    ]


class ReceiverService:
    """The receiver: C-ECHO/C-STORE on ``receiver.host:port``, completion sweep, metrics."""

    def __init__(self, settings: Settings, hooks: Sequence[SeriesCompleteHook] = ()) -> None:
        self.settings = settings
        self.hooks = [*default_hooks(settings), *hooks]
        configured = settings.receiver.workers
        self.workers = configured if configured > 0 else default_workers()
        self._store: ObjectStore | None = None
        self._index: MetadataIndex | None = None
        self._server: ReceiverServer | None = None
        self._pool: Any = None
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
            ingestor = Ingestor(self._store, self._index)
            self._server = make_server(
                settings.receiver,
                ingestor,
                process_incoming_dir(settings),
                access=DimseAccess.for_site(settings),
            )
            threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name="openjip-receiver",
                daemon=True,
            ).start()
            host, port = self._server.server_address[:2]
            registry = metrics.REGISTRY
        else:
            from openjip.receiver.workers import WorkerPool

            self._metrics_dir = tempfile.mkdtemp(prefix="openjip-metrics-")
            self._pool = WorkerPool(settings, self.workers, metrics_dir=self._metrics_dir)
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
            self.hooks,
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
        if self._server is not None:
            self._server.ae.shutdown()
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
