"""The completion sweep: marks series complete once no instance arrived for a while.

The decision rests on the index alone (last received time per series), so several
receivers may sweep the same index; ``mark_series_complete`` hands each completion to
exactly one of them. A listener that fails (disk full, Airflow down) is called again with
the same series at every later sweep until it succeeds; the other listeners are not repeated.
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
        self._failed: list[tuple[SeriesCompleteListener, SeriesRecord]] = []
        """Listener calls that raised, in order, retried at every sweep until they succeed."""
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
        """Call the listeners that failed before again, mark every idle series complete and
        tell the listeners; return what became complete."""
        retries, self._failed = self._failed, []
        for listener, failed in retries:
            self._call(listener, failed)
        completed = []
        for series in self.index.idle_series(self._clock() - self.idle_seconds):
            record = self.index.mark_series_complete(
                series.SeriesInstanceUID, series.last_received_at
            )
            if record is None:
                continue  # another sweeper took it, or an instance arrived meanwhile
            completed.append(record)
            for listener in self.listeners:
                self._call(listener, record)
        return completed

    @property
    def pending_retries(self) -> int:
        """Listener calls that failed and wait for the next sweep."""
        return len(self._failed)

    def _call(self, listener: SeriesCompleteListener, record: SeriesRecord) -> None:
        try:
            listener(record)
        # A broken listener must not stop the other listeners or the sweep.
        except Exception:
            LOGGER.exception(
                "series-complete listener %r failed for %s; retried at the next sweep",
                listener,
                record.SeriesInstanceUID,
            )
            self._failed.append((listener, record))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except IndexError_ as exc:
                LOGGER.warning("completion sweep skipped: %s", exc)
