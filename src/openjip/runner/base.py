"""The StepRunner interface: run one analysis step of one workflow run, wherever steps run.

A :class:`StepRequest` says what to run (operator, params, which series, where the inputs come
from); a backend decides how (``local`` subprocess, ``kubernetes`` pod). Outputs always land
under ``runs/<dag_id>/<run>/<step>/<SeriesInstanceUID>/`` in the object store; DICOM outputs
are ingested like received series with ``derived_from`` set to their source series.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openjip.dicom.uids import is_valid_uid
from openjip.workflows.spec import ResourcesSpec

RUNS_PREFIX = "runs/"
"""Where every step output lands in the object store."""
ALL_SERIES = "all"
"""Series part of the output keys of a step that ran once over every series."""

_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._\-=+@]")


class StepFailed(Exception):
    """The step ran and failed; the message is the step's own error message."""


def key_safe(text: str) -> str:
    """``text`` with characters object keys do not allow (``:`` of run ids) turned to ``_``."""
    return _UNSAFE_KEY_CHARS.sub("_", text)


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
        parts = (
            self.dag_id,
            self.run_id,
            step or self.step,
            series or self.series_part,
        )
        return RUNS_PREFIX + "/".join(key_safe(part) for part in parts) + "/"


class NotAnOutputKey(ValueError):
    """An object key that does not fit ``runs/<dag>/<run>/<step>/<series>/<path>``."""


@dataclass(frozen=True)
class OutputKey:
    """The parts of a step output's object key, as :meth:`StepRequest.output_prefix` wrote them:
    key-safe, so a run id's ``:`` comes back as ``_``."""

    dag_id: str
    run_id: str
    step: str
    series_uid: str
    """The source series; empty for a step over every series (``all`` in the key)."""
    path: str
    """The file's path below the step's output folder."""


def parse_output_key(key: str) -> OutputKey:
    """The parts of an output key; :class:`NotAnOutputKey` saying what does not fit."""
    if not key.startswith(RUNS_PREFIX):
        raise NotAnOutputKey(f"not under {RUNS_PREFIX}")
    parts = key[len(RUNS_PREFIX) :].split("/")
    if len(parts) < 5 or not all(parts):
        raise NotAnOutputKey("expected runs/<workflow>/<run>/<step>/<series>/<file>")
    unsafe = [part for part in parts if key_safe(part) != part]
    if unsafe:
        raise NotAnOutputKey(f"{unsafe[0]!r} has characters output keys never contain")
    dag_id, run_id, step, series = parts[:4]
    if series != ALL_SERIES and not is_valid_uid(series):
        raise NotAnOutputKey(f"{series!r} is neither a SeriesInstanceUID nor {ALL_SERIES!r}")
    return OutputKey(
        dag_id=dag_id,
        run_id=run_id,
        step=step,
        series_uid="" if series == ALL_SERIES else series,
        path="/".join(parts[4:]),
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
    def run(self, request: StepRequest, context: Mapping[str, Any] | None = None) -> StepOutcome:
        """Run the step to its end; :class:`StepFailed` with the step's message on failure.

        ``context`` is the Airflow task context when the step runs inside a task.
        """
