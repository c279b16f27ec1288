"""What happens when a series becomes complete: the hook interface and a JSONL event log.

The completion sweep calls every hook once per (series, version). Hooks run in the receiver's
main process; a hook that raises is logged and does not stop the others.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

from openjip.index.base import SeriesRecord

EVENTS_FILE = "events/series_complete.jsonl"
"""Where :class:`JsonlEventLog` writes, relative to ``OPENJIP_HOME``."""


@runtime_checkable
class SeriesCompleteHook(Protocol):
    """Called with the series record once it became complete (``series.version`` counts)."""

    def __call__(self, series: SeriesRecord) -> None: ...


class JsonlEventLog:
    """Appends one ``series_complete`` event per line to a JSONL file (fsynced).

    Other processes (e.g. a workflow trigger) can follow the file; every line is a whole
    JSON object with ``event``, ``emitted_at`` and the series record.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def __call__(self, series: SeriesRecord) -> None:
        line = json.dumps(
            {"event": "series_complete", "emitted_at": time.time(), "series": series.to_dict()}
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a", encoding="utf-8") as file:
            file.write(line + "\n")
            file.flush()
            os.fsync(file.fileno())


def read_events(path: Path) -> list[dict[str, object]]:
    """All events written so far by :class:`JsonlEventLog` (empty when there is no file)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
