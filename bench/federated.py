"""Federated learning, three sites on loopback, against the same model trained centrally.

Each site (own OPENJIP_HOME, object store, SQLite index, web service and federation service,
started as the chart starts them) holds its own cohort of phantom chest CTs from its own scanner
(openjip.learning.example: noise 10/60/180 HU, a nodule in every 2nd/3rd/2nd patient). At each
site the real ``nodule-features`` operator runs once per series through the local StepRunner
(a subprocess, as the workflow's features step runs); then the three sites' parts of the
federated run (``openjip.learning.run.run_at_site``, what each site's Airflow task calls) run at
once, FedAvg rounds through the signed federation channel.

Peers in the same run, on the same features and the same held-out series (every third series of
each site):
- ``centralized``: the same model trained on the pooled training series of all sites with as many
  passes as the federated run made in all (rounds times local epochs);
- ``local_only``: the same model trained at each site alone, evaluated on the pooled test series
  (what a site gets without federation).
A second federated run adds local differential privacy at every site (``DP``: each update
clipped and noised by Flower's ``LocalDpMod`` before it leaves): ``federated_dp_metric``.
Writes bench/results/federated.json: ``federated_metric`` and ``centralized_metric`` (accuracy on
the pooled held-out series) and their ratio, log losses, the strategy's per-round metrics, wall
times, ``bytes_sent_per_site`` (from each site's audit log) and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from openjip.config import Settings
from openjip.config.services import FederationSettings
from openjip.federation.exchange import Exchange
from openjip.federation.service import FederationService
from openjip.index import Query, open_index
from openjip.ingest import Ingestor
from openjip.learning import model
from openjip.learning.example import FEATURES, SITES, write_cohort
from openjip.learning.run import load_cohort, run_at_site
from openjip.runner import StepRequest
from openjip.runner.local import LocalStepRunner
from openjip.storage import open_store
from openjip.web.service import WebService
from openjip.workflows.spec import FederatedSpec

RESULTS = Path(__file__).resolve().parent / "results" / "federated.json"
WORKFLOW, RUN, FEATURES_STEP = "nodule-classifier", "bench__1", "features"
DP = {"dp_clipping_norm": 1.0, "dp_epsilon": 10.0, "dp_delta": 1e-5}
"""Local differential privacy of the second federated run (Flower's LocalDpMod at each site)."""


class BenchSite:
    """One started site of the bench federation."""

    def __init__(self, name: str, home: Path) -> None:
        self.name, self.home = name, home
        self.web = WebService(Settings(home=home, web={"host": "127.0.0.1", "port": 0}))
        self.web.start()
        federation = FederationSettings(
            host="127.0.0.1", port=0, pull_interval_seconds=0, site_web_url=self.web.url
        )
        self.exchange = Exchange(home, federation)
        self.exchange.init(name)
        self.service = FederationService(self.exchange, log_level="warning")
        self.service.start()

    def settings(self) -> Settings:
        return Settings(
            home=self.home,
            federation=self.exchange.settings,
            learning={"federation_url": self.service.url, "poll_seconds": 0.05, "min_cohort": 5},
        )

    def stop(self) -> None:
        self.service.stop()
        self.web.stop()


def prepare(site: BenchSite, scans: Path, patients: int) -> tuple[list[str], float]:
    """Ingest the site's cohort and run the features operator per series; seconds of the step."""
    settings = site.settings()
    store, index = open_store(settings), open_index(settings)
    ingestor = Ingestor(store, index)
    example = next(item for item in SITES if item.name == site.name)
    for path in write_cohort(example, scans / site.name, patients=patients):
        ingestor.ingest_file(path, source_ae="SCANNER")
    uids = [series.SeriesInstanceUID for series in index.find_series(Query(Modality="CT"))]
    runner = LocalStepRunner(store, index, site.home / "work")
    started = time.perf_counter()
    for uid in uids:
        runner.run(StepRequest(WORKFLOW, RUN, FEATURES_STEP, "nodule-features@0.1.0", [uid]))
    seconds = time.perf_counter() - started
    index.close()
    return uids, seconds


def cohort_of(site: BenchSite, spec: FederatedSpec, uids: list[str]) -> model.Cohort:
    settings = site.settings()
    index = open_index(settings)
    cohort = load_cohort(
        open_store(settings), index, spec, workflow_id=WORKFLOW, run_id=RUN, series_uids=uids
    )
    index.close()
    return cohort


def federate(
    sites: dict[str, BenchSite], spec: FederatedSpec, series: dict[str, list[str]]
) -> dict[str, Any]:
    """One federated run at all sites at once: the final model, rounds, wall time and the bytes
    each site's audit log says left it."""
    marks = {name: sum(1 for _ in site.exchange.audit.entries()) for name, site in sites.items()}
    summaries: dict[str, Any] = {}

    def part(name: str) -> None:
        summaries[name] = run_at_site(
            sites[name].settings(),
            spec,
            workflow_id=WORKFLOW,
            run_id=RUN,
            series_uids=series[name],
            step="federated",
        )

    threads = [threading.Thread(target=part, args=(name,)) for name in sites]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    assert set(summaries) == set(sites), "a site's part failed (see the log above)"
    store = open_store(sites["a"].settings())
    prefix = f"runs/{WORKFLOW}/{RUN}/federated/all/"
    trained = json.loads(store.get(prefix + "model.json"))
    # Participants send updates; the coordinator sends each round's model to them.
    sent = {
        name: sum(
            entry["details"]["bytes"]
            for entry in list(site.exchange.audit.entries())[marks[name] :]
            if entry["event"] in ("learning-update-sent", "learning-task-sent")
        )
        for name, site in sites.items()
    }
    return {
        "parameters": [np.asarray(trained["weights"]), np.asarray([trained["bias"]])],
        "rounds": json.loads(store.get(prefix + "metrics.json"))["rounds"],
        "seconds": seconds,
        "sent": sent,
    }


def start_sites(root: Path) -> dict[str, BenchSite]:
    """The three sites; a (the coordinator) and each other site trust each other."""
    sites = {example.name: BenchSite(example.name, root / example.name) for example in SITES}
    coordinator = sites["a"]
    for name in "bc":
        coordinator.exchange.peers.add(
            name, sites[name].service.url, sites[name].exchange.identity.public_key
        )
        sites[name].exchange.peers.add(
            "a", coordinator.service.url, coordinator.exchange.identity.public_key
        )
    return sites


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=24, help="series (patients) per site")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--local-epochs", type=int, default=20)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="openjip-bench-federated-") as temp:
        root = Path(temp)
        sites = start_sites(root)
        try:
            spec = FederatedSpec(
                coordinator=sites["a"].exchange.identity.site_id,
                features_from=FEATURES_STEP,
                features=FEATURES,
                rounds=args.rounds,
                local_epochs=args.local_epochs,
                sites=3,
                min_sites=3,
                min_cohort=5,
                round_timeout_seconds=120,
                join_timeout_seconds=120,
            )
            prepared = {name: prepare(site, root / "scans", args.patients)
                        for name, site in sites.items()}  # fmt: skip
            series = {name: uids for name, (uids, _) in prepared.items()}
            plain = federate(sites, spec, series)
            private_spec = FederatedSpec.model_validate({**spec.model_dump(), "privacy": DP})
            private = federate(sites, private_spec, series)
            cohorts = {name: cohort_of(site, spec, series[name]) for name, site in sites.items()}
        finally:
            for site in sites.values():
                site.stop()

    splits = {name: cohort.split() for name, cohort in cohorts.items()}
    train_all = model.Cohort.pooled([train for train, _ in splits.values()])
    test_all = model.Cohort.pooled([test for _, test in splits.values()])
    epochs = spec.rounds * spec.local_epochs

    def trained_on(cohort: model.Cohort) -> list[Any]:
        start = model.initial_parameters(len(FEATURES))
        return model.train(start, cohort, epochs=epochs, learning_rate=spec.learning_rate)

    started = time.perf_counter()
    central = trained_on(train_all)
    centralized_seconds = time.perf_counter() - started
    scores = {
        "federated": model.evaluate(plain["parameters"], test_all),
        "centralized": model.evaluate(central, test_all),
        "federated_dp": model.evaluate(private["parameters"], test_all),
    }
    result = {
        "what": "3 sites on loopback, FedAvg over openjip's signed federation channel, "
        "logistic regression on nodule-features of phantom chest CTs; accuracy (and log loss) on "
        "the pooled held-out series (every third series of each site)",
        "federated_metric": round(scores["federated"]["accuracy"], 4),
        "centralized_metric": round(scores["centralized"]["accuracy"], 4),
        "federated_over_centralized": round(
            scores["federated"]["accuracy"] / scores["centralized"]["accuracy"], 4
        ),
        "log_loss": {name: round(score["loss"], 4) for name, score in scores.items()},
        "federated_dp_metric": round(scores["federated_dp"]["accuracy"], 4),
        "dp": DP,
        "local_only_metric": {
            name: round(model.evaluate(trained_on(train), test_all)["accuracy"], 4)
            for name, (train, _) in splits.items()
        },
        "rounds": plain["rounds"],
        "wall_seconds": {
            "features_step_per_site": {n: round(p[1], 2) for n, p in prepared.items()},
            "federated_run": round(plain["seconds"], 2),
            "federated_dp_run": round(private["seconds"], 2),
            "centralized_training": round(centralized_seconds, 4),
        },
        "bytes_sent_per_site": plain["sent"],
        "series_per_site": {name: cohort.size for name, cohort in cohorts.items()},
        "parameters": {
            "rounds": spec.rounds,
            "local_epochs": spec.local_epochs,
            "learning_rate": spec.learning_rate,
            "strategy": spec.strategy,
        },
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
