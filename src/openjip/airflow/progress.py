"""A step's progress in its Airflow run: each report of the operator (``openjip.sdk.progress``)
is a line of the task log and, at most every :data:`PUSH_SECONDS` (and always the last one), the
task instance's XCom :data:`PROGRESS_XCOM` — ``{"fraction": 0.4, "message": "slice 8/20"}`` —
which Airflow's UI lists under the task instance and the Images page shows beside the step."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from openjip.sdk.contract import Progress

PROGRESS_XCOM = "progress"
PUSH_SECONDS = 2.0
"""Shortest time between two XCom writes of one task (an operator may report every slice)."""


class TaskLog(Protocol):
    """The task's logger (Airflow's structlog logger, or a stdlib one)."""

    def info(self, event: str, *args: Any) -> Any: ...


class ProgressReporter:
    """Called with each :class:`Progress` of a running step (from the runner's reader thread);
    without a task instance (a step run outside a task) the reports only go to the log."""

    def __init__(
        self,
        task_instance: Any,
        log: TaskLog,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.task_instance = task_instance
        self.log = log
        self.clock = clock
        self.pending: Progress | None = None
        self.pushed_at: float | None = None

    def __call__(self, progress: Progress) -> None:
        self.log.info("progress %.0f%% %s", progress.fraction * 100, progress.message)
        self.pending = progress
        if self.pushed_at is None or self.clock() - self.pushed_at >= PUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the latest report not yet written, if any."""
        if self.pending is None or self.task_instance is None:
            return
        value = {"fraction": self.pending.fraction, "message": self.pending.message}
        self.task_instance.xcom_push(key=PROGRESS_XCOM, value=value)
        self.pending, self.pushed_at = None, self.clock()
