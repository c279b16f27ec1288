"""Choosing the StepRunner backend from the settings."""

from __future__ import annotations

from openjip.config import Settings
from openjip.runner.base import StepRunner


def open_runner(settings: Settings) -> StepRunner:
    """The runner the settings choose: ``airflow.step_runner``, or else the site's ``mode``."""
    backend = settings.airflow.step_runner or settings.mode
    if backend == "kubernetes":
        from openjip.runner.kubernetes import KubernetesStepRunner

        return KubernetesStepRunner(settings)
    from openjip.index import open_index
    from openjip.runner.local import LocalStepRunner
    from openjip.storage import open_store

    return LocalStepRunner(open_store(settings), open_index(settings), settings.home_dir / "work")
