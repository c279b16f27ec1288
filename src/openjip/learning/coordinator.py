"""The coordinator's run: open a session at its own federation service, wait for sites to join,
run the spec's Flower strategy over a :class:`~openjip.learning.grid.FederationGrid`, and close
the session with the outcome.

The aggregation task reaches its federation service over the site-internal routes with the
site's loopback secret (:class:`InternalChannel`); it never talks to peers itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.app import MetricRecord
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg, FedMedian, FedTrimmedAvg

from openjip.learning.client import parameters_of, record_of
from openjip.learning.grid import FederationGrid, RoundFailed
from openjip.learning.model import initial_parameters
from openjip.statistics.loopback import LoopbackClient, LoopbackUnavailable
from openjip.workflows.spec import FederatedSpec

log = logging.getLogger(__name__)
STRATEGIES: dict[str, type[FedAvg]] = {
    "FedAvg": FedAvg,
    "FedMedian": FedMedian,
    "FedTrimmedAvg": FedTrimmedAvg,
}


class CoordinationFailed(Exception):
    """The run could not complete; the message says why (too few sites, a failed round)."""


class InternalChannel:
    """The rounds of one workflow at this site's federation service (site-internal routes)."""

    def __init__(self, federation_url: str, secret: Path, workflow_id: str) -> None:
        self.client = LoopbackClient(federation_url, secret)
        self.route = f"/internal/v1/learning/{workflow_id}"

    def _call(self, method: str, path: str = "", body: dict[str, Any] | None = None) -> Any:
        try:
            return self.client.request(method, self.route + path, body)
        except LoopbackUnavailable as error:
            raise CoordinationFailed(f"this site's federation service: {error}") from error

    def open(self, session_id: str) -> None:
        """Start the session (ending an earlier one of the workflow)."""
        self._call("POST", "/open", {"session_id": session_id})

    def state(self) -> dict[str, Any]:
        """Joined and declined sites, queued messages and replies."""
        return self._call("GET")

    def push(self, messages: list[dict[str, Any]]) -> None:
        """Queue messages for peers."""
        self._call("POST", "/push", {"messages": messages})

    def replies(self) -> dict[str, dict[str, Any]]:
        """Every reply received so far, by message id."""
        replies: dict[str, dict[str, Any]] = self.state()["replies"]
        return replies

    def close(self, state: str, message: str) -> None:
        """End the session (``finished`` or ``failed``)."""
        self._call("POST", "/close", {"state": state, "message": message})


@dataclass
class Outcome:
    """What a federated run produced at the coordinator."""

    parameters: list[Any]
    sites: list[str]
    """Site ids of the sites that trained (the coordinator's included when it did)."""
    declined: dict[str, dict[str, Any]]
    rounds: list[dict[str, Any]] = field(default_factory=list)
    """Per round: the strategy's aggregated train and evaluate metrics."""

    def model(self, spec: FederatedSpec) -> dict[str, Any]:
        """The final model as JSON (what ``runs/`` keeps)."""
        weights, bias = self.parameters
        return {
            "model": spec.model,
            "features": spec.features,
            "weights": [float(v) for v in weights],
            "bias": float(bias[0]),
        }


def _await_sites(
    channel: InternalChannel, spec: FederatedSpec, local: bool, poll: float
) -> dict[str, Any]:
    deadline = time.monotonic() + spec.join_timeout_seconds
    while True:
        state = channel.state()
        answered = len(state["joined"]) + len(state["declined"]) + int(local)
        if answered >= spec.sites or time.monotonic() >= deadline:
            return state
        time.sleep(poll)


def coordinate(
    spec: FederatedSpec,
    channel: InternalChannel,
    session_id: str,
    *,
    own_site_id: str,
    local: ClientApp | None,
    poll_seconds: float,
) -> Outcome:
    """Run the whole federated run; :class:`CoordinationFailed` when it cannot complete."""
    channel.open(session_id)
    try:
        state = _await_sites(channel, spec, local is not None, poll_seconds)
        sites = sorted(state["joined"])
        taking_part = len(sites) + int(local is not None)
        if taking_part < spec.min_sites:
            declined = "; ".join(
                f"{item['peer']}: {item['reason']} ({item['message']})"
                for item in state["declined"].values()
            )
            raise CoordinationFailed(
                f"only {taking_part} sites take part, the spec needs {spec.min_sites}"
                + (f"; declined: {declined}" if declined else "")
            )
        grid = FederationGrid(
            channel,
            sites,
            local=(own_site_id, local) if local is not None else None,
            min_sites=spec.min_sites,
            poll_seconds=poll_seconds,
        )
        strategy = STRATEGIES[spec.strategy](
            min_train_nodes=spec.min_sites,
            min_evaluate_nodes=spec.min_sites,
            min_available_nodes=spec.min_sites,
        )
        result = strategy.start(
            grid=grid,
            initial_arrays=record_of(initial_parameters(len(spec.features))),
            num_rounds=spec.rounds,
            timeout=spec.round_timeout_seconds,
        )
    except (RoundFailed, CoordinationFailed) as error:
        channel.close("failed", str(error))
        raise CoordinationFailed(str(error)) from error
    channel.close("finished", f"{spec.rounds} rounds with {taking_part} sites")
    rounds = [
        {
            "round": number,
            "train": _plain(result.train_metrics_clientapp.get(number)),
            "evaluate": _plain(result.evaluate_metrics_clientapp.get(number)),
        }
        for number in range(1, spec.rounds + 1)
    ]
    return Outcome(
        parameters=parameters_of(result.arrays),
        sites=sites + ([own_site_id] if local is not None else []),
        declined=state["declined"],
        rounds=rounds,
    )


def _plain(record: MetricRecord | None) -> dict[str, float]:
    return {key: float(value) for key, value in (record or {}).items()}  # type: ignore[arg-type]
