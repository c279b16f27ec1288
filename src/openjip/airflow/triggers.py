"""Series-arrival triggers: a completed series starts every workflow whose rule it matches.

The receiver's completion sweep calls :class:`SeriesTriggerHook` once per (series, version). The
hook writes one trigger per matching workflow into a durable queue (an SQLite file under
``OPENJIP_HOME``) and a background thread delivers them through Airflow's REST API, retrying while
Airflow is down. The run id is derived from the series and its version, and the queue's key is
(workflow, run id), so each (workflow, series, series version) gets exactly one run — whether the
event repeats, delivery is retried, or Airflow already saw the trigger.
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
from openjip.index.base import SeriesRecord
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
class QueuedTrigger:
    """One trigger waiting in (or delivered from) the queue."""

    dag_id: str
    run_id: str
    conf: dict[str, Any]
    queued_at: float
    delivered_at: float | None
    attempts: int
    last_error: str


class TriggerQueue:
    """The durable queue of triggers: survives restarts, one row per (workflow, run id)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def add(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> bool:
        """Queue a trigger; ``False`` when this (workflow, run id) was queued before."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO triggers (dag_id, run_id, conf, queued_at) VALUES (?,?,?,?)",
                (dag_id, run_id, json.dumps(conf), time.time()),
            )
        return cursor.rowcount == 1

    def pending(self) -> list[QueuedTrigger]:
        """Triggers not delivered yet, oldest first."""
        return self._select("WHERE delivered_at IS NULL ORDER BY queued_at")

    def all(self) -> list[QueuedTrigger]:
        """Every trigger, oldest first."""
        return self._select("ORDER BY queued_at")

    def delivered(self, dag_id: str, run_id: str) -> None:
        """Mark a trigger delivered."""
        with self._lock:
            self._db.execute(
                "UPDATE triggers SET delivered_at = ?, attempts = attempts + 1, last_error = ''"
                " WHERE dag_id = ? AND run_id = ?",
                (time.time(), dag_id, run_id),
            )

    def failed(self, dag_id: str, run_id: str, error: str) -> None:
        """Record a failed delivery attempt; the trigger stays pending."""
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

    def _select(self, where: str) -> list[QueuedTrigger]:
        with self._lock:
            rows = self._db.execute(
                "SELECT dag_id, run_id, conf, queued_at, delivered_at, attempts, last_error"
                f" FROM triggers {where}"
            ).fetchall()
        return [
            QueuedTrigger(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6])
            for row in rows
        ]


class SeriesTriggerHook:
    """The receiver's series-complete hook that starts matching workflows (a site component
    too: :meth:`start` runs the delivery thread, :meth:`stop` ends it)."""

    name = "workflow triggers"

    def __init__(
        self,
        settings: Settings,
        *,
        client_factory: Callable[[], AirflowClient] | None = None,
    ) -> None:
        self.settings = settings
        self.queue = TriggerQueue(settings.home_dir / QUEUE_FILE)
        self._client_factory = client_factory or (lambda: AirflowClient.from_settings(settings))
        self._client: AirflowClient | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, series: SeriesRecord) -> None:
        """Queue a run of each workflow the completed ``series`` matches, then deliver."""
        specs = list(discover_specs(workflow_dirs(self.settings)).specs.values())
        run_id = run_id_for(series)
        for dag_id, conf in triggered_runs(specs, series):
            if self.queue.add(dag_id, run_id, conf):
                log.info("series %s: queued %s run %s", series.SeriesInstanceUID, dag_id, run_id)
        self.start()
        self._wake.set()

    def deliver_pending(self) -> int:
        """Try to deliver every pending trigger; return how many are still pending."""
        pending = self.queue.pending()
        for index, trigger in enumerate(pending):
            try:
                if self._client is None:
                    self._client = self._client_factory()
                self._client.trigger(trigger.dag_id, trigger.run_id, trigger.conf)
            except RunExists:
                self.queue.delivered(trigger.dag_id, trigger.run_id)
            except AirflowUnavailable as error:
                self.queue.failed(trigger.dag_id, trigger.run_id, str(error))
                self._client = None
                log.warning(
                    "Airflow unavailable, %d triggers wait: %s", len(pending) - index, error
                )
                return len(pending) - index
            except AirflowError as error:
                # e.g. the DAG is not parsed yet: keep it and try again with the others.
                self.queue.failed(trigger.dag_id, trigger.run_id, str(error))
                log.warning("trigger %s/%s refused: %s", trigger.dag_id, trigger.run_id, error)
            else:
                self.queue.delivered(trigger.dag_id, trigger.run_id)
                log.info("started %s run %s", trigger.dag_id, trigger.run_id)
        return len(self.queue.pending())

    def start(self) -> None:
        """Start delivering queued triggers in the background (also those left from before)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="openjip-triggers", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the delivery thread; undelivered triggers stay queued on disk."""
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
        return [f"Triggers   queue {self.queue.path}"]

    def _loop(self) -> None:
        retry = self.settings.airflow.trigger_retry_seconds
        while not self._stop.is_set():
            self._wake.clear()
            pending = self.deliver_pending()
            self._wake.wait(retry if pending else None)
