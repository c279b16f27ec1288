"""Whether this site joins a federated run, and with which privacy: its own settings decide.

The spec may ask for more than the site's settings (a larger minimum cohort, a smaller clipping
norm or ε), never less: a spec asking for less, or a cohort below the larger minimum, is refused
with a :class:`JoinRefused` whose ``reason`` is a short code and whose message says why. A site
requiring secure aggregation refuses every run: no run provides it yet (see
docs/federated-learning.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from openjip.config.learning import LearningSettings
from openjip.workflows.spec import FederatedSpec


class JoinRefused(Exception):
    """This site does not take part in the run; ``reason``: ``min-cohort`` or ``privacy``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Privacy:
    """What is applied to every update before it leaves (``None``: not applied)."""

    clipping_norm: float | None = None
    epsilon: float | None = None
    delta: float | None = None

    def describe(self) -> dict[str, float | None]:
        """For the audit log and the run's metrics."""
        return {
            "dp_clipping_norm": self.clipping_norm,
            "dp_epsilon": self.epsilon,
            "dp_delta": self.delta,
        }


def check_cohort(
    spec: FederatedSpec, settings: LearningSettings, *, series: int, patients: int
) -> None:
    """Refuse a cohort smaller than the larger of the spec's and the site's minimum."""
    minimum = max(spec.min_cohort, settings.min_cohort)
    if series < minimum or patients < minimum:
        raise JoinRefused(
            "min-cohort",
            f"this run selected {series} series of {patients} patients; this site trains only "
            f"on at least {minimum} of each (site minimum {settings.min_cohort}, spec "
            f"minimum {spec.min_cohort})",
        )


def _weaker(asked: float | None, required: float | None) -> bool:
    return required is not None and (asked is None or asked > required)


def decide_privacy(spec: FederatedSpec, settings: LearningSettings) -> Privacy:
    """The privacy this site applies: the spec's, unless weaker than the site's settings."""
    asked = spec.privacy
    problems = []
    if settings.secure_aggregation:
        problems.append(
            "this site sends updates only under secure aggregation (SecAgg+), which openjip's "
            "federated runs do not provide yet: the coordinator would see this site's own update"
        )
    if _weaker(asked.dp_clipping_norm, settings.dp_clipping_norm):
        problems.append(
            f"this site clips every update to an L2 norm of at most {settings.dp_clipping_norm}; "
            f"the spec asks for {asked.dp_clipping_norm}"
        )
    if _weaker(asked.dp_epsilon, settings.dp_epsilon):
        problems.append(
            f"this site adds noise for ε ≤ {settings.dp_epsilon}; the spec asks for "
            f"{asked.dp_epsilon}"
        )
    delta = asked.dp_delta if asked.dp_delta is not None else settings.dp_delta
    if (
        asked.dp_epsilon is not None
        and settings.dp_epsilon is not None
        and (delta > settings.dp_delta)
    ):
        problems.append(f"this site allows δ ≤ {settings.dp_delta}; the spec asks for {delta}")
    if asked.dp_epsilon is not None and asked.dp_clipping_norm is None:
        problems.append("noise (dp_epsilon) needs a clipping norm (dp_clipping_norm)")
    if problems:
        raise JoinRefused("privacy", "the spec asks for weaker privacy: " + "; ".join(problems))
    return Privacy(
        clipping_norm=asked.dp_clipping_norm,
        epsilon=asked.dp_epsilon,
        delta=delta if asked.dp_epsilon is not None else None,
    )
