"""The Airflow operators of workflow DAGs: pick the series of a run, run one analysis step.

Both are thin: :class:`SelectSeriesOperator` turns the run's conf (or the spec's index query)
into a list of SeriesInstanceUIDs; :class:`AnalysisOperator` turns its step and the run's params
into a :class:`~openjip.runner.StepRequest` (:func:`step_request`) and hands it to the local
StepRunner. A failing step fails its task with the step's own message. In ``kubernetes`` mode
steps are pod tasks instead (:mod:`openjip.airflow.pod_tasks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from airflow.sdk import BaseOperator, XComArg
from airflow.sdk.exceptions import AirflowException

from openjip.runner.base import StepRequest
from openjip.workflows.spec import (
    SERIES_PARAM,
    InputSpec,
    StepSpec,
    resolve_param_value,
)


class SelectSeriesOperator(BaseOperator):
    """Returns the SeriesInstanceUIDs a run works on."""

    ui_color = "#e8f4fa"

    def __init__(self, *, input_spec: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_spec = input_spec

    def execute(self, context: Any) -> list[str]:
        """The series of the run's conf (series, studies, accession numbers or patient IDs),
        else those of the spec's cohort or query."""
        params = context["params"]
        chosen = [uid.strip() for uid in params.get(SERIES_PARAM) or [] if uid.strip()]
        spec = InputSpec.model_validate(self.input_spec)
        if not chosen and spec.kind == "series":
            raise AirflowException(
                f"no series selected: give at least one SeriesInstanceUID in {SERIES_PARAM!r}"
            )
        from openjip.config import get_settings
        from openjip.index import Query, open_index

        settings = get_settings()
        index = open_index(settings)
        try:
            if chosen or spec.kind == "cohort":
                return self._selected(index, settings, chosen, spec.cohort)
            fields = {key: resolve_param_value(value, params) for key, value in spec.query.items()}
            found = index.find_series(Query(**fields, limit=spec.limit))
        finally:
            index.close()
        uids = [series.SeriesInstanceUID for series in found if not series.derived_from]
        self.log.info("index query %s found %d series", fields, len(uids))
        if not uids:
            raise AirflowException(f"the index query {fields} found no series")
        return uids

    def _selected(self, index: Any, settings: Any, chosen: list[str], cohort: str) -> list[str]:
        """What the form named, else the cohort's series; each value's match is logged."""
        from openjip.cohorts.selection import SelectionError, load_cohort, resolve_identifiers
        from openjip.storage import open_store

        try:
            if chosen:
                uids, notes = resolve_identifiers(index, chosen)
                for note in notes:
                    self.log.info("series field: %s", note)
            else:
                uids = load_cohort(open_store(settings), cohort).selection.resolve(index)
                self.log.info("cohort %r holds %d series", cohort, len(uids))
        except SelectionError as error:
            raise AirflowException(str(error)) from error
        self.log.info("series chosen for this run: %s", uids)
        return uids


class AnalysisOperator(BaseOperator):
    """Runs one step of a workflow on one series (mapped) or on every series of the run."""

    template_fields: Sequence[str] = ("series_uid", "series_uids")
    ui_color = "#d7f0dd"

    def __init__(
        self,
        *,
        workflow_id: str,
        step: dict[str, Any],
        series_uid: str | None = None,
        series_uids: list[str] | XComArg | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.step = step
        self.series_uid = series_uid
        self.series_uids = series_uids

    def execute(self, context: Any) -> dict[str, Any]:
        """Run the step through the local StepRunner; return what it produced."""
        from openjip.config import get_settings
        from openjip.runner import StepFailed, open_runner

        request = step_request(
            self.workflow_id, self.step, self.series_uid, self.series_uids, context, self.log
        )
        try:
            outcome = open_runner(get_settings()).run(request, context)
        except StepFailed as failure:
            raise AirflowException(
                f"step {request.step} failed on {request.series_uids}: {failure}"
            ) from failure
        self.log.info("step %s produced %s", request.step, outcome.to_dict())
        return outcome.to_dict()


class TaskLog(Protocol):
    """A task's logger, as Airflow gives it (``self.log``)."""

    def info(self, event: str, *args: Any) -> Any: ...


def step_request(
    workflow_id: str,
    step_spec: dict[str, Any],
    series_uid: str | None,
    series_uids: list[str] | XComArg | None,
    context: Any,
    log: TaskLog,
) -> StepRequest:
    """What a step task runs: its step with the run's params, on its series (one when mapped,
    else those ``select_series`` found — rendered into a list by Airflow by now); said in the
    task's ``log``."""
    step = StepSpec.model_validate(step_spec)
    series = [series_uid] if series_uid else list(series_uids or [])  # type: ignore[arg-type]
    params = {
        name: resolve_param_value(value, context["params"]) for name, value in step.params.items()
    }
    request = StepRequest(
        dag_id=workflow_id,
        run_id=context["run_id"],
        step=step.name,
        operator=step.operator,
        series_uids=series,
        params=params,
        input_from=step.input_from,
        resources=step.resources,
    )
    log.info("step %s (%s) on %s with %s", step.name, step.operator, series, params)
    return request
