"""Series-arrival runs: a completed series starts every workflow whose rule it matches.

The receiver's completion sweep tells :class:`SeriesArrivalRuns` of each (series, version). It
writes one run request per matching workflow into a durable queue (an SQLite file under
``OPENJIP_HOME``) and a background thread delivers them through Airflow's REST API, retrying while
Airflow is down. The run id is derived from the series and its version, and the queue's key is
(workflow, run id), so each (workflow, series, series version) gets exactly one run — whether the
event repeats, delivery is retried, or Airflow already has the run.

A queue on a volume that does not outlive its container (the chart's receiver pods) starts
empty: on start the delivery thread queues again the runs of every series the index says became
complete within ``airflow.recover_completed_hours``; Airflow answers those it has with "exists".
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openjip.airflow.client import AirflowClient, AirflowError, AirflowUnavailable, RunExists
from openjip.config import Settings
from openjip.index.base import IndexError_, Query, SeriesRecord
from openjip.state.versions import ensure_store
from openjip.workflows.loader import discover_specs, workflow_dirs
from openjip.workflows.spec import SERIES_PARAM, MatchRule, WorkflowSpec

log = logging.getLogger(__name__)

QUEUE_FILE = "workflow-triggers.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS triggers (
    dag_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    conf TEXT NOT NULL,
    queued_at REAL NOT NULL,
    delivered_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (dag_id, run_id)
)
"""


def run_id_for(series: SeriesRecord) -> str:
    """The run id of the run a series version starts: the same for the same version."""
    return f"openjip__{series.SeriesInstanceUID}__v{series.version}"


def matches(rule: MatchRule, series: SeriesRecord) -> bool:
    """Whether ``series`` satisfies ``rule`` (each pattern must match its whole field)."""
    if series.NumberOfSeriesRelatedInstances < rule.min_instances:
        return False
    for field, pattern in rule.model_dump(exclude_none=True).items():
        if field == "min_instances":
            continue
        value = str(getattr(series, field, "") or "")
        if re.fullmatch(pattern, value, flags=re.IGNORECASE) is None:
            return False
    return True


def triggered_runs(
    specs: list[WorkflowSpec], series: SeriesRecord
) -> list[tuple[str, dict[str, Any]]]:
    """``(workflow id, run conf)`` of every workflow a completed series starts.

    Series an analysis produced (``derived_from`` set) start nothing, so results cannot loop.
    """
    if series.derived_from:
        return []
    runs = []
    for spec in specs:
        for trigger in spec.triggers.on_series_complete:
            if matches(trigger.match, series):
                runs.append((spec.id, {SERIES_PARAM: [series.SeriesInstanceUID], **trigger.params}))
                break
    return runs


@dataclass(frozen=True)
class QueuedRun:
    """One run request waiting in (or delivered from) the queue."""

    dag_id: str
    run_id: str
    conf: dict[str, Any]
    queued_at: float
    delivered_at: float | None
    attempts: int
    last_error: str


class RunRequestQueue:
    """The durable queue of run requests: survives restarts, one row per (workflow, run id)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        ensure_store(path.parent, "trigger-queue")  # refuses a newer openjip's queue (StateTooNew)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def add(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> bool:
        """Queue a run request; ``False`` when this (workflow, run id) was queued before."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO triggers (dag_id, run_id, conf, queued_at) VALUES (?,?,?,?)",
                (dag_id, run_id, json.dumps(conf), time.time()),
            )
        return cursor.rowcount == 1

    def pending(self) -> list[QueuedRun]:
        """Run requests not delivered yet, oldest first."""
        return self._select("WHERE delivered_at IS NULL ORDER BY queued_at")

    def all(self) -> list[QueuedRun]:
        """Every run request, oldest first."""
        return self._select("ORDER BY queued_at")

    def delivered(self, dag_id: str, run_id: str) -> None:
        """Mark a run request delivered."""
        with self._lock:
            self._db.execute(
                "UPDATE triggers SET delivered_at = ?, attempts = attempts + 1, last_error = ''"
                " WHERE dag_id = ? AND run_id = ?",
                (time.time(), dag_id, run_id),
            )

    def failed(self, dag_id: str, run_id: str, error: str) -> None:
        """Record a failed delivery attempt; the request stays pending."""
        with self._lock:
            self._db.execute(
                "UPDATE triggers SET attempts = attempts + 1, last_error = ?"
                " WHERE dag_id = ? AND run_id = ?",
                (error, dag_id, run_id),
            )

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def _select(self, where: str) -> list[QueuedRun]:
        with self._lock:
            rows = self._db.execute(
                "SELECT dag_id, run_id, conf, queued_at, delivered_at, attempts, last_error"
                f" FROM triggers {where}"
            ).fetchall()
        return [
            QueuedRun(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6])
            for row in rows
        ]


class SeriesArrivalRuns:
    """Listens for completed series and starts the workflows they match (a site component
    too: :meth:`start` runs the recovery and delivery thread, :meth:`stop` ends it)."""

    name = "series-arrival runs"

    def __init__(
        self,
        settings: Settings,
        *,
        client_factory: Callable[[], AirflowClient] | None = None,
    ) -> None:
        self.settings = settings
        self.queue = RunRequestQueue(settings.home_dir / QUEUE_FILE)
        self._client_factory = client_factory or (lambda: AirflowClient.from_settings(settings))
        self._client: AirflowClient | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._recovered = settings.airflow.recover_completed_hours == 0

    def __call__(self, series: SeriesRecord) -> None:
        """Queue a run of each workflow the completed ``series`` matches, then deliver."""
        self._queue_runs(self._specs(), series)
        self.start()
        self._wake.set()

    def recover(self) -> int:
        """Queue the runs of the series that became complete within the recovery window and are
        not queued yet; return how many were queued. The index may be unreachable
        (:class:`~openjip.index.IndexError_`); the delivery thread tries again."""
        from openjip.index import open_index

        since = time.time() - self.settings.airflow.recover_completed_hours * 3600
        specs = self._specs()
        index = open_index(self.settings)
        try:
            recent = [
                series
                for series in index.find_series(Query())
                if series.complete and series.last_received_at >= since
            ]
        finally:
            index.close()
        queued = sum(self._queue_runs(specs, series) for series in recent)
        log.info("recovered %d series-arrival runs of %d recent series", queued, len(recent))
        return queued

    def _specs(self) -> list[WorkflowSpec]:
        return list(discover_specs(workflow_dirs(self.settings)).specs.values())

    def _queue_runs(self, specs: list[WorkflowSpec], series: SeriesRecord) -> int:
        run_id = run_id_for(series)
        queued = 0
        for dag_id, conf in triggered_runs(specs, series):
            if self.queue.add(dag_id, run_id, conf):
                log.info("series %s: queued %s run %s", series.SeriesInstanceUID, dag_id, run_id)
                queued += 1
        return queued

    def deliver_pending(self) -> int:
        """Try to deliver every pending run request; return how many are still pending."""
        pending = self.queue.pending()
        for waiting, request in enumerate(pending):
            try:
                if self._client is None:
                    self._client = self._client_factory()
                self._client.trigger(request.dag_id, request.run_id, request.conf)
            except RunExists:
                self.queue.delivered(request.dag_id, request.run_id)
            except AirflowUnavailable as error:
                self.queue.failed(request.dag_id, request.run_id, str(error))
                self._client = None
                log.warning(
                    "Airflow unavailable, %d run requests wait: %s", len(pending) - waiting, error
                )
                return len(pending) - waiting
            except AirflowError as error:
                # e.g. the DAG is not parsed yet: keep it and try again with the others.
                self.queue.failed(request.dag_id, request.run_id, str(error))
                log.warning("run %s/%s refused: %s", request.dag_id, request.run_id, error)
            else:
                self.queue.delivered(request.dag_id, request.run_id)
                log.info("started %s run %s", request.dag_id, request.run_id)
        return len(self.queue.pending())

    def start(self) -> None:
        """Start delivering queued runs in the background (also those left from before)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, name="openjip-series-arrival", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the delivery thread; undelivered run requests stay queued on disk."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def endpoints(self) -> list[str]:
        """Where the queue is."""
        return [f"Runs       series-arrival queue {self.queue.path}"]

    def _loop(self) -> None:
        retry = self.settings.airflow.trigger_retry_seconds
        while not self._stop.is_set():
            self._wake.clear()
            if not self._recovered:
                try:
                    self.recover()
                    self._recovered = True
                except IndexError_ as error:
                    log.warning("series-arrival recovery waits for the index: %s", error)
            pending = self.deliver_pending() or not self._recovered
            self._wake.wait(retry if pending else None)
