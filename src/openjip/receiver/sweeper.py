"""The completion sweep: marks series complete once no instance arrived for a while.

The decision rests on the index alone (last received time per series), so several
receivers may sweep the same index; ``mark_series_complete`` hands each completion to
exactly one of them. A hook that fails (disk full, Airflow down) is called again with the
same series at every later sweep until it succeeds; the other hooks are not repeated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from openjip.index.base import IndexError_, MetadataIndex, SeriesRecord
from openjip.receiver.hooks import SeriesCompleteHook

LOGGER = logging.getLogger(__name__)


class CompletionSweeper:
    """A daemon thread that sweeps every ``interval`` seconds."""

    def __init__(
        self,
        index: MetadataIndex,
        hooks: Sequence[SeriesCompleteHook],
        *,
        idle_seconds: float,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.index = index
        self.hooks = list(hooks)
        self.idle_seconds = idle_seconds
        self.interval = interval
        self._clock = clock
        self._failed: list[tuple[SeriesCompleteHook, SeriesRecord]] = []
        """Hook calls that raised, in order, retried at every sweep until they succeed."""
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
        """Call the hooks that failed before again, mark every idle series complete and call
        the hooks; return what became complete."""
        retries, self._failed = self._failed, []
        for hook, failed in retries:
            self._call(hook, failed)
        completed = []
        for series in self.index.idle_series(self._clock() - self.idle_seconds):
            record = self.index.mark_series_complete(
                series.SeriesInstanceUID, series.last_received_at
            )
            if record is None:
                continue  # another sweeper took it, or an instance arrived meanwhile
            completed.append(record)
            for hook in self.hooks:
                self._call(hook, record)
        return completed

    @property
    def pending_retries(self) -> int:
        """Hook calls that failed and wait for the next sweep."""
        return len(self._failed)

    def _call(self, hook: SeriesCompleteHook, record: SeriesRecord) -> None:
        try:
            hook(record)
        except Exception:
            LOGGER.exception(
                "series-complete hook %r failed for %s; retried at the next sweep",
                hook,
                record.SeriesInstanceUID,
            )
            self._failed.append((hook, record))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except IndexError_ as exc:
                LOGGER.warning("completion sweep skipped: %s", exc)
