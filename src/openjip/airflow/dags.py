"""The DAG factory: one Airflow DAG per valid workflow spec, one import error for the rest.

A spec with a ``federated`` section gets one more task after its features step,
``federated`` (:mod:`openjip.airflow.federated`): this site's part of the federated run, in
its own pod under the KubernetesExecutor when ``OPENJIP_LEARNING__POD_TEMPLATE_FILE`` is set.

``dags/openjip_workflows.py`` calls :func:`build_dags` and nothing else. A spec that fails
validation yields no DAG; instead one placeholder DAG whose validation fails carries every
rejected spec's errors, which the DagBag records as an import error of the DAG file while the
valid specs' DAGs load as usual.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseOperator, Param

from openjip.airflow.federated import FederatedLearningOperator
from openjip.airflow.operators import AnalysisOperator, SelectSeriesOperator
from openjip.config import Settings, get_settings
from openjip.runner.factory import step_backend
from openjip.workflows.loader import discover_specs, workflow_dirs
from openjip.workflows.spec import SERIES_PARAM, ParamSpec, WorkflowSpec
from openjip.workflows.validation import SpecInvalid

REJECTED_DAG_ID = "openjip-rejected-workflow-specs"
FEDERATED_TASK = "federated"
"""Task of a federated-learning workflow (:mod:`openjip.airflow.federated`)."""


class InvalidWorkflowSpecs(Exception):
    """Workflow specs that were not turned into DAGs, with every error of each."""


class RejectedSpecs(DAG):
    """Never loaded: its validation fails with the errors of the rejected specs."""

    rejected: list[SpecInvalid]

    def validate(self) -> None:
        """Always fails, naming each rejected spec and its errors."""
        raise InvalidWorkflowSpecs("\n".join(str(invalid) for invalid in self.rejected))


def airflow_param(spec: ParamSpec) -> Param:
    """The Airflow Param (a field of the trigger form) of a workflow param."""
    schema: dict[str, Any] = {"type": spec.type}
    if spec.type == "array":
        schema["items"] = {"type": "string"}
    for key in ("title", "description"):
        if getattr(spec, key):
            schema[key] = getattr(spec, key)
    for key in ("enum", "minimum", "maximum"):
        if getattr(spec, key) is not None:
            schema[key] = getattr(spec, key)
    if spec.default is None:
        return Param(**schema)
    return Param(spec.default, **schema)


def series_param(spec: WorkflowSpec) -> Param:
    """The form field listing the series of a run."""
    if spec.input.kind == "query":
        hint = "Leave empty to use the series the workflow's index query finds."
    elif spec.input.kind == "cohort":
        hint = f"Leave empty to use the series of the cohort {spec.input.cohort!r}."
    else:
        hint = "At least one."
    return Param(
        [],
        type="array",
        items={"type": "string"},
        title="Series",
        description=(
            "What to analyse, one per line: SeriesInstanceUIDs, StudyInstanceUIDs, accession "
            f"numbers or patient IDs (each is resolved to its series). {hint}"
        ),
    )


def step_task_class(settings: Settings) -> type[BaseOperator]:
    """The task of a step: the local runner's, or in ``kubernetes`` mode a pod task."""
    if step_backend(settings) == "kubernetes":
        from openjip.airflow.pod_tasks import AnalysisPodOperator

        return AnalysisPodOperator
    return AnalysisOperator


def _federated_pod(settings: Settings) -> dict[str, str]:
    """The federated task's own pod under the KubernetesExecutor (the chart's NetworkPolicy
    ``federated-learning`` selects it); none configured: the worker's."""
    template = settings.learning.pod_template_file
    return {"pod_template_file": template} if template else {}


def build_dag(
    spec: WorkflowSpec, source: Path | None = None, settings: Settings | None = None
) -> DAG:
    """The DAG of one valid spec: pick the series, then each step after its dependencies."""
    settings = settings or get_settings()
    step_task = step_task_class(settings)
    params = {SERIES_PARAM: series_param(spec)}
    params.update({name: airflow_param(param) for name, param in spec.params.items()})
    doc = f"{spec.description}\n\nSpec `{spec.id}` version {spec.version}"
    if source is not None:
        doc += f", from `{source}`"
    tags = ["openjip", *spec.tags]
    if spec.origin is not None:
        origin = spec.origin
        doc += (
            f"\n\nAccepted from federation peer `{origin.peer}` (site `{origin.site_id}`), "
            f"publication #{origin.sequence}, bundle `{origin.bundle_id}`, "
            f"signature `{origin.signature}`."
        )
        tags.append(f"federated:{origin.peer}")
    with DAG(
        dag_id=spec.id,
        dag_display_name=spec.title,
        description=spec.title,
        doc_md=doc,
        schedule=None,
        catchup=False,
        params=params,
        tags=tags,
        is_paused_upon_creation=False,
        default_args={"owner": "openjip"},
    ) as dag:
        select = SelectSeriesOperator(
            task_id="select_series", input_spec=spec.input.model_dump(mode="json")
        )
        tasks: dict[str, Any] = {}
        for step in spec.steps:
            arguments: dict[str, Any] = {
                "task_id": step.name,
                "workflow_id": spec.id,
                "step": step.model_dump(mode="json"),
                "retries": step.retries,
                "execution_timeout": timedelta(minutes=settings.airflow.step_timeout_minutes),
                "doc_md": step.description or None,
            }
            if step.per_series:
                tasks[step.name] = step_task.partial(**arguments).expand(series_uid=select.output)
            else:
                tasks[step.name] = step_task(**arguments, series_uids=select.output)
        for step in spec.steps:
            if not step.depends_on:
                select >> tasks[step.name]
            for dependency in step.depends_on:
                tasks[dependency] >> tasks[step.name]
        if spec.federated is not None:
            learn = FederatedLearningOperator(
                task_id=FEDERATED_TASK,
                workflow_id=spec.id,
                federated=spec.federated.model_dump(mode="json"),
                series_uids=select.output,
                execution_timeout=timedelta(minutes=settings.airflow.step_timeout_minutes),
                executor_config=_federated_pod(settings),
                doc_md="This site's part of the federated run: trains on the selected series "
                "and, at the coordinator, aggregates the rounds.",
            )
            tasks[spec.federated.features_from] >> learn
    return dag


def build_dags(dirs: list[Path] | None = None) -> dict[str, DAG]:
    """Every DAG of the workflow folders (default: those of the current settings), by id."""
    settings = get_settings()
    catalog = discover_specs(workflow_dirs(settings) if dirs is None else dirs)
    dags = {
        spec_id: build_dag(spec, catalog.paths[spec_id], settings)
        for spec_id, spec in catalog.specs.items()
    }
    if catalog.rejected:
        placeholder = RejectedSpecs(dag_id=REJECTED_DAG_ID, schedule=None)
        placeholder.rejected = catalog.rejected
        dags[REJECTED_DAG_ID] = placeholder
    return dags
