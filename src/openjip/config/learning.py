"""Settings of federated learning at this site: what it lets leave (``OPENJIP_LEARNING__*``).

Each limit is the site's own: a federated workflow's spec can ask for more privacy, never less
(a spec asking for less is refused by this site, with the reason).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class LearningSettings(BaseModel):
    """Limits on what this site's training runs send, and where its aggregation runs reach."""

    min_cohort: int = Field(
        10,
        ge=1,
        description="A federated run training on fewer series (or patients) than this refuses "
        "to join; the spec's own minimum applies when it is higher.",
    )
    dp_clipping_norm: float | None = Field(
        None,
        gt=0,
        description="When set, every update is clipped to this L2 norm before it leaves "
        "(Flower's LocalDpMod); a spec asking for a larger norm or none is refused.",
    )
    dp_epsilon: float | None = Field(
        None,
        gt=0,
        description="When set, Gaussian noise for this ε is added to every update before it "
        "leaves (needs `dp_clipping_norm`); a spec asking for a larger ε or none is refused.",
    )
    dp_delta: float = Field(
        1e-5, gt=0, lt=1, description="δ of the Gaussian mechanism when `dp_epsilon` is set."
    )
    secure_aggregation: bool = Field(
        False,
        description="When on, this site sends updates only under secure aggregation (SecAgg+: "
        "the coordinator sees only the sum); openjip's runs do not provide it yet, so this site "
        "refuses every run (`privacy`) while it is on.",
    )
    federation_url: str = Field(
        "",
        description="This site's federation service as the coordinator's aggregation task "
        "reaches it; default `http://<federation host>:<federation port>`.",
    )
    pod_template_file: str = Field(
        "",
        description="Under Airflow's KubernetesExecutor, the pod template of the `federated` task "
        "(its executor_config): the chart's own pod, which its NetworkPolicy lets reach only "
        "the coordinators besides the site's store, index and Airflow; empty: the worker's.",
    )
    poll_seconds: float = Field(
        1.0, gt=0, description="How often a waiting training or aggregation task asks again."
    )
