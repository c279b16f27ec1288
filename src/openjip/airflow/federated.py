"""The task of a federated-learning workflow: this site's part of the run
(:func:`openjip.learning.run.run_at_site`), after the step whose features it trains on.

Its log shows the role (coordinator or participant) and each round; it fails with the reason
when this site refuses to join (minimum cohort, weaker privacy), the coordinator is no peer, or
the run itself fails (too few sites, a round without enough replies).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, XComArg
from airflow.sdk.exceptions import AirflowException


class FederatedLearningOperator(BaseOperator):
    """Trains (and at the coordinator aggregates) on the series the run selected."""

    template_fields: Sequence[str] = ("series_uids",)
    ui_color = "#f3e6fa"

    def __init__(
        self,
        *,
        workflow_id: str,
        federated: dict[str, Any],
        series_uids: list[str] | XComArg,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.federated = federated
        self.series_uids = series_uids

    def execute(self, context: Any) -> dict[str, Any]:
        """Run this site's part; return its summary."""
        from openjip.config import get_settings
        from openjip.learning.coordinator import CoordinationFailed
        from openjip.learning.participant import ParticipationFailed
        from openjip.learning.run import CohortInvalid, run_at_site
        from openjip.workflows.spec import FederatedSpec

        spec = FederatedSpec.model_validate(self.federated)
        try:
            summary = run_at_site(
                get_settings(),
                spec,
                workflow_id=self.workflow_id,
                run_id=context["run_id"],
                series_uids=list(self.series_uids),  # type: ignore[arg-type]
                step=self.task_id,
            )
        except ParticipationFailed as failure:
            raise AirflowException(
                f"this site did not take part ({failure.reason}): {failure}"
            ) from failure
        except (CoordinationFailed, CohortInvalid) as failure:
            raise AirflowException(f"federated run failed: {failure}") from failure
        self.log.info("federated run done: %s", summary)
        return summary
