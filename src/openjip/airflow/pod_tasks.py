"""Analysis steps as pod tasks: in ``kubernetes`` mode every step of a DAG is a
KubernetesPodOperator that Airflow manages.

:class:`AnalysisPodOperator` adds only what a step needs to the provider's operator: when the
task runs, its :class:`~openjip.runner.StepRequest` (the run's params, its series) becomes the
pod's content (:class:`openjip.runner.kubernetes.AnalysisPod`). Everything else is the
provider's own code: creating the pod, deferring to the triggerer while it runs (when
``airflow.deferrable_pods``), streaming the logs of the fetch, operator and publish containers
into the task log, reading the summary from the XCom sidecar, and deleting the pod after
success, failure, a kill (``on_kill``) or the task's ``execution_timeout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import XComArg

from openjip.airflow.operators import step_request
from openjip.config import Settings, get_settings
from openjip.runner.kubernetes import POD_BEHAVIOUR, AnalysisPod, pod_name

SCHEDULE_TIMEOUT_SECONDS = 600
"""How long a pod may wait for a node before its task fails."""


class AnalysisPodOperator(KubernetesPodOperator):
    """Runs one step of a workflow on one series (mapped) or every series of the run, in a pod."""

    template_fields: Sequence[str] = (
        *KubernetesPodOperator.template_fields,
        "series_uid",
        "series_uids",
    )
    ui_color = "#d7f0dd"

    def __init__(
        self,
        *,
        workflow_id: str,
        step: dict[str, Any],
        series_uid: str | None = None,
        series_uids: list[str] | XComArg | None = None,
        settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        settings = settings or get_settings()
        airflow = settings.airflow
        super().__init__(
            name=pod_name(workflow_id, step["name"]),
            namespace=airflow.namespace,
            image=airflow.step_image,
            deferrable=airflow.deferrable_pods,
            schedule_timeout_seconds=SCHEDULE_TIMEOUT_SECONDS,
            # The operator is an init container: the pod stays Pending while it runs, which the
            # provider counts as starting up, so starting up may take the whole step.
            startup_timeout_seconds=int(airflow.step_timeout_minutes * 60),
            **POD_BEHAVIOUR,
            **kwargs,
        )
        self.workflow_id = workflow_id
        self.step = step
        self.series_uid = series_uid
        self.series_uids = series_uids

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> Any:
        """The provider's pod, with this run's step in it (the pod's content is known only
        now: the run's params and series, the operator's pinned image and resources)."""
        if context is not None:
            request = step_request(
                self.workflow_id, self.step, self.series_uid, self.series_uids, context, self.log
            )
            for attribute, value in AnalysisPod(get_settings()).arguments(request).items():
                setattr(self, attribute, value)
        return super().build_pod_request_obj(context, dry_run=dry_run)
