"""Running analysis steps: the :class:`StepRunner` interface and its backends — ``local``
(the operator's entrypoint as a subprocess) and ``kubernetes`` (a pod per step).

``open_runner(settings)`` returns the backend the settings choose.
"""

from openjip.runner.base import (
    StepFailed,
    StepOutcome,
    StepRequest,
    StepRunner,
    key_safe,
)
from openjip.runner.factory import open_runner

__all__ = ["StepFailed", "StepOutcome", "StepRequest", "StepRunner", "key_safe", "open_runner"]
