"""What happens when a series becomes complete: the listener interface and a JSONL event log.

The completion sweep calls every listener once per (series, version). Listeners run in the
receiver's main process; a listener that raises is logged and does not stop the others.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

from openjip.access.files import open_private_append
from openjip.index.base import SeriesRecord

EVENTS_FILE = "events/series_complete.jsonl"
"""Where :class:`JsonlEventLog` writes, relative to ``OPENJIP_HOME``."""
KEPT_OLD_LOGS = 3
"""Rotated event logs kept (``.1`` newest to ``.3`` oldest)."""


@runtime_checkable
class SeriesCompleteListener(Protocol):
    """Called with the series record once it became complete (``series.version`` counts)."""

    def __call__(self, series: SeriesRecord) -> None: ...


class JsonlEventLog:
    """Appends one ``series_complete`` event per line to a JSONL file (fsynced).

    Other processes (e.g. a workflow trigger) can follow the file; every line is a whole
    JSON object with ``event``, ``emitted_at`` and the series record. A file that reached
    ``max_bytes`` is renamed to ``<name>.1`` (older ones move up to ``.3``, the oldest is
    dropped) and a new one is begun, so the log never fills the disk.
    """

    def __init__(self, path: Path, *, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def __call__(self, series: SeriesRecord) -> None:
        line = json.dumps(
            {"event": "series_complete", "emitted_at": time.time(), "series": series.to_dict()}
        )
        with self._lock:
            self._rotate_when_full()
            with open(open_private_append(self.path), "a", encoding="utf-8") as file:
                file.write(line + "\n")
                file.flush()
                os.fsync(file.fileno())

    def _rotate_when_full(self) -> None:
        try:
            if self.path.stat().st_size < self.max_bytes:
                return
        except FileNotFoundError:
            return
        for number in range(KEPT_OLD_LOGS - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{number + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))


def read_events(path: Path) -> list[dict[str, object]]:
    """The events in the current file of :class:`JsonlEventLog` (empty when there is none)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
