"""Choosing how analysis steps run from the settings."""

from __future__ import annotations

from typing import Literal

from openjip.config import Settings
from openjip.runner.base import StepRunner


def step_backend(settings: Settings) -> Literal["local", "kubernetes"]:
    """``airflow.step_runner``, or else the site's ``mode``."""
    return settings.airflow.step_runner or settings.mode


def open_runner(settings: Settings) -> StepRunner:
    """The runner of steps that run on this machine (the ``local`` backend).

    In ``kubernetes`` mode no runner runs a step: each step is a pod task that Airflow manages
    (:class:`openjip.airflow.pod_tasks.AnalysisPodOperator`).
    """
    if step_backend(settings) == "kubernetes":
        raise ValueError(
            "kubernetes steps are pod tasks of their DAG (AnalysisPodOperator), not run by a "
            "StepRunner; set OPENJIP_AIRFLOW__STEP_RUNNER=local to run steps here"
        )
    from openjip.index import open_index
    from openjip.runner.local import LocalStepRunner
    from openjip.storage import open_store

    confined = settings.airflow.step_confinement == "landlock"
    return LocalStepRunner(
        open_store(settings),
        open_index(settings),
        settings.home_dir / "work",
        private=settings.home_dir if confined else None,
    )
