"""The completion sweep: marks series complete once no instance arrived for a while.

The decision rests on the index alone (last received time per series), so several
receivers may sweep the same index; ``mark_series_complete`` hands each completion to
exactly one of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from openjip.index.base import IndexError_, MetadataIndex, SeriesRecord
from openjip.receiver.series_complete import SeriesCompleteListener

LOGGER = logging.getLogger(__name__)


class CompletionSweeper:
    """A daemon thread that sweeps every ``interval`` seconds."""

    def __init__(
        self,
        index: MetadataIndex,
        listeners: Sequence[SeriesCompleteListener],
        *,
        idle_seconds: float,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.index = index
        self.listeners = list(listeners)
        self.idle_seconds = idle_seconds
        self.interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openjip-sweeper", daemon=True)

    def start(self) -> None:
        """Start sweeping in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sweeping and wait for the current sweep to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def sweep(self) -> list[SeriesRecord]:
        """Mark every idle series complete, tell the listeners; return what became complete."""
        completed = []
        for series in self.index.idle_series(self._clock() - self.idle_seconds):
            record = self.index.mark_series_complete(
                series.SeriesInstanceUID, series.last_received_at
            )
            if record is None:
                continue  # another sweeper took it, or an instance arrived meanwhile
            completed.append(record)
            for listener in self.listeners:
                try:
                    listener(record)
                # A broken listener must not stop the other listeners or the sweep.
                except Exception:
                    LOGGER.exception("series-complete listener %r failed", listener)
        return completed

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except IndexError_ as exc:
                LOGGER.warning("completion sweep skipped: %s", exc)
