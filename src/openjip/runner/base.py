"""The StepRunner interface: run one analysis step of one workflow run, wherever steps run.

A :class:`StepRequest` says what to run (operator, params, which series, where the inputs come
from); a backend decides how (``local`` subprocess, ``kubernetes`` pod). Outputs always land
under ``runs/<dag_id>/<run>/<step>/<SeriesInstanceUID>/`` in the object store; DICOM outputs
are ingested like received series with ``derived_from`` set to their source series.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from openjip.records.keys import ALL_SERIES, output_prefix
from openjip.records.keys import key_safe as key_safe  # re-exported for the runner backends
from openjip.sdk.contract import Progress
from openjip.workflows.spec import ResourcesSpec

ProgressCallback = Callable[[Progress], None]
"""Called with each progress report of a running step's operator."""


class StepFailed(Exception):
    """The step ran and failed; the message is the step's own error message."""


@dataclass(frozen=True)
class StepRequest:
    """One step of one run over one series (fan-out) or over every series of the run."""

    dag_id: str
    run_id: str
    step: str
    operator: str
    """``name@version``."""
    series_uids: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    input_from: str | None = None
    """Earlier step whose outputs are the input, instead of the DICOM series."""
    resources: ResourcesSpec | None = None

    @property
    def series_part(self) -> str:
        """The SeriesInstanceUID in output keys, or ``all`` for a step over many series."""
        return self.series_uids[0] if len(self.series_uids) == 1 else ALL_SERIES

    def output_prefix(self, step: str | None = None, series: str | None = None) -> str:
        """``runs/<dag>/<run>/<step>/<series>/`` of this run (this step unless named)."""
        return output_prefix(
            self.dag_id, self.run_id, step or self.step, series or self.series_part
        )


@dataclass
class StepOutcome:
    """What a step produced."""

    dicom_series: list[str] = field(default_factory=list)
    """SeriesInstanceUIDs of DICOM results, stored and indexed like received series."""
    instances: int = 0
    output_keys: list[str] = field(default_factory=list)
    """Object keys of every uploaded output (DICOM ones included)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (the task's XCom)."""
        return {
            "dicom_series": self.dicom_series,
            "instances": self.instances,
            "output_keys": self.output_keys,
        }


class StepRunner(abc.ABC):
    """Runs analysis steps."""

    @abc.abstractmethod
    def run(
        self,
        request: StepRequest,
        context: Mapping[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> StepOutcome:
        """Run the step to its end; :class:`StepFailed` with the step's message on failure.

        ``context`` is the Airflow task context when the step runs inside a task;
        ``on_progress`` hears the operator's progress reports as they come.
        """
