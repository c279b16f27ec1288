"""The environment an analysis step (an operator's process or container) may see: an explicit
allow-list, never what the Airflow worker or an openjip service holds (Airflow's JWT secret,
database URL and Fernet key, openjip's store, index and identity-provider credentials).

A step gets the names below from its parent's environment plus the variables of its own
contract (:mod:`openjip.sdk.contract`), which the runner adds.
"""

from __future__ import annotations

from collections.abc import Mapping

STEP_ENV_ALLOWED = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR", "TZ", "LANG", "LANGUAGE",
        # How many threads numeric libraries start, and which GPUs the step may use.
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "CUDA_VISIBLE_DEVICES",
    }
)  # fmt: skip
"""Variables a step inherits; ``LC_*`` (locale) ones as well."""


def step_environment(parent: Mapping[str, str]) -> dict[str, str]:
    """The allowed part of ``parent``."""
    return {
        name: value
        for name, value in parent.items()
        if name in STEP_ENV_ALLOWED or name.startswith("LC_")
    }
