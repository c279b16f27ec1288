"""Running analysis steps: the :class:`StepRunner` interface, its ``local`` backend (the
operator's entrypoint as a subprocess) and, for ``kubernetes`` mode, the pod of a step
(:mod:`openjip.runner.kubernetes`), which Airflow runs as a pod task.

``step_backend(settings)`` says which of the two the settings choose; ``open_runner(settings)``
returns the local runner.
"""

from openjip.runner.base import (
    StepFailed,
    StepOutcome,
    StepRequest,
    StepRunner,
    key_safe,
)
from openjip.runner.factory import open_runner, step_backend

__all__ = [
    "StepFailed",
    "StepOutcome",
    "StepRequest",
    "StepRunner",
    "key_safe",
    "open_runner",
    "step_backend",
]
