"""Federated learning between three sites on loopback, each with its own OPENJIP_HOME, index,
object store, web service and federation service; the coordinator's and the participants' runs
(:func:`openjip.learning.run.run_at_site`) run at once in threads, as each site's Airflow task
would. The features are given (this test is about what travels and who decides); the DAG test
with phantom CTs and the real features operator is in test_learning_dags.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from openjip.config import Settings
from openjip.index import InstanceRecord, Query, open_index
from openjip.learning import model
from openjip.learning.coordinator import CoordinationFailed
from openjip.learning.example import FEATURES
from openjip.learning.participant import ParticipationFailed
from openjip.learning.run import run_at_site
from openjip.records.keys import output_prefix
from openjip.storage import open_store
from openjip.workflows.spec import FederatedSpec

WORKFLOW = "nodule-classifier"
RUN = "manual__2026-12-06T20:00:00+00:00"
# Site -> (series, every n-th has a nodule, noise holes in negatives).
COHORTS = {"a": (16, 2, 0.0), "b": (14, 3, 0.0), "c": (16, 2, 4.6)}


def _features(rng: np.random.Generator, nodule: bool, noise_holes: float) -> dict[str, float]:
    largest = rng.normal(3.9, 0.4) if nodule else rng.normal(1.2 * (noise_holes > 0), 0.3)
    total = max(largest, noise_holes + rng.normal(0, 0.2)) if noise_holes else largest
    return {
        "log_hole_volume": float(max(total, 0.0)),
        "log_largest_hole": float(max(largest, 0.0)),
        "hole_fraction_pct": float(abs(rng.normal(0.2 if nodule else 0.05, 0.05))),
        "lung_hu_mean": float(rng.normal(0.0, 0.05)),
        "lung_hu_std": float(0.1 + noise_holes / 2.3 + rng.normal(0, 0.01)),
    }


def _fill(settings: Settings, name: str) -> list[str]:
    """Index the site's series and store each one's features.json as the features step would."""
    count, every, noise_holes = COHORTS[name]
    rng = np.random.default_rng(ord(name))
    index, store = open_index(settings), open_store(settings)
    uids = []
    for number in range(count):
        uid = f"1.2.826.0.1.3680043.10.{ord(name)}.{number}"
        index.upsert_instances(
            [
                InstanceRecord(
                    SOPInstanceUID=f"{uid}.1",
                    SeriesInstanceUID=uid,
                    StudyInstanceUID=f"{uid}.0",
                    PatientID=f"{name}-patient-{number}",
                    PatientName=f"Doe^{name.upper()}{number}",
                    Modality="CT",
                )
            ]
        )
        document = {
            "features": _features(rng, number % every == 0, noise_holes),
            "label": int(number % every == 0),
        }
        store.put(
            output_prefix(WORKFLOW, RUN, "features", uid) + "features.json",
            json.dumps(document).encode(),
        )
        uids.append(uid)
    index.close()
    return uids


class Federation:
    """Three started sites that trust each other as a federated run needs."""

    def __init__(self, make_site: Any, tmp_path: Path) -> None:
        self.sites = {name: make_site(name) for name in "abc"}
        a, b, c = (self.sites[name] for name in "abc")
        for participant in (b, c):
            a.trust(participant)
            participant.trust(a)
        self.series = {name: _fill(self.settings(name), name) for name in "abc"}
        self.learning: dict[str, dict[str, Any]] = {name: {} for name in "abc"}

    def settings(self, name: str) -> Settings:
        site = self.sites[name]
        learning = {
            "federation_url": site.url,
            "poll_seconds": 0.1,
            "min_cohort": 5,
            **self.learning_of(name),
        }
        return Settings(home=site.home, federation=site.exchange.settings, learning=learning)

    def learning_of(self, name: str) -> dict[str, Any]:
        return getattr(self, "learning", {}).get(name, {})

    def spec(self, **changes: Any) -> FederatedSpec:
        values: dict[str, Any] = {
            "coordinator": self.sites["a"].exchange.identity.site_id,
            "features_from": "features",
            "features": FEATURES,
            "rounds": 4,
            "sites": 3,
            "min_sites": 2,
            "min_cohort": 5,
            "round_timeout_seconds": 20,
            "join_timeout_seconds": 20,
        }
        return FederatedSpec.model_validate({**values, **changes})

    def run(self, spec: FederatedSpec, names: str = "abc") -> dict[str, Any]:
        """Each site's part at once; its summary or the exception it raised."""
        results: dict[str, Any] = {}

        def part(name: str) -> None:
            try:
                results[name] = run_at_site(
                    self.settings(name),
                    spec,
                    workflow_id=WORKFLOW,
                    run_id=RUN,
                    series_uids=self.series[name],
                    step="federated",
                )
            except Exception as error:  # noqa: BLE001 - the test looks at what each site raised
                results[name] = error

        threads = [threading.Thread(target=part, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        return results

    def stored(self, name: str, file: str) -> Any:
        store = open_store(self.settings(name))
        return json.loads(store.get(output_prefix(WORKFLOW, RUN, "federated", "all") + file))

    def audit(self, name: str, event: str) -> list[dict[str, Any]]:
        entries = self.sites[name].exchange.audit.entries()
        return [entry["details"] for entry in entries if entry["event"] == event]


@pytest.fixture
def federation(make_site: Any, tmp_path: Path) -> Federation:
    return Federation(make_site, tmp_path)


def _pooled(federation: Federation, spec: FederatedSpec) -> tuple[model.Cohort, model.Cohort]:
    """Train and test parts of all three cohorts, split as each site splits its own."""
    from openjip.learning.run import load_cohort

    trains, tests = [], []
    for name in "abc":
        settings = federation.settings(name)
        index = open_index(settings)
        cohort = load_cohort(
            open_store(settings),
            index,
            spec,
            workflow_id=WORKFLOW,
            run_id=RUN,
            series_uids=federation.series[name],
        )
        index.close()
        train_part, test_part = cohort.split()
        trains.append(train_part)
        tests.append(test_part)

    return model.Cohort.pooled(trains), model.Cohort.pooled(tests)


def test_three_sites_train_a_model_as_good_as_pooled_training(federation: Federation) -> None:
    spec = federation.spec()
    results = federation.run(spec)

    assert isinstance(results["a"], dict), repr(results)
    assert results["a"]["role"] == "coordinator", results
    assert {results[name]["role"] for name in "bc"} == {"participant"}, results
    stored = federation.stored("a", "model.json")
    metrics = federation.stored("a", "metrics.json")
    assert len(metrics["rounds"]) == spec.rounds and len(metrics["sites"]) == 3
    train_part, test_part = _pooled(federation, spec)
    federated = model.evaluate(
        [np.asarray(stored["weights"]), np.asarray([stored["bias"]])], test_part
    )["accuracy"]
    central = model.evaluate(
        model.train(
            model.initial_parameters(len(FEATURES)),
            train_part,
            epochs=spec.rounds * spec.local_epochs,
            learning_rate=spec.learning_rate,
        ),
        test_part,
    )["accuracy"]
    assert central > 0.8
    assert federated >= 0.9 * central, (federated, central)
    # The strategy's evaluation over every site's held-out series says the same.
    assert metrics["rounds"][-1]["evaluate"]["eval-accuracy"] >= 0.9 * central
    for name in "bc":
        local = federation.stored(name, "local-metrics.json")
        assert {item["type"] for item in local["rounds"]} == {"train", "evaluate"}
        assert len(local["rounds"]) == 2 * spec.rounds


def test_only_the_declared_tensors_and_metrics_leave_and_the_audit_adds_up(
    federation: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openjip.federation.client import PeerClient

    sent_by: dict[str, list[tuple[str, str, bytes]]] = {}
    request = PeerClient.request

    def capture(client: PeerClient, method: str, path: str, body: bytes = b"") -> Any:
        sent_by.setdefault(client.identity.name, []).append((method, path, body))
        return request(client, method, path, body)

    monkeypatch.setattr(PeerClient, "request", capture)
    federation.run(federation.spec())

    state = federation.sites["a"].exchange.rounds.state(WORKFLOW)
    assert state is not None and state["state"] == "finished"
    for name in "bc":
        index = open_index(federation.settings(name))
        identifying = {
            value
            for series in index.find_series(Query())
            for value in (
                series.SeriesInstanceUID,
                series.StudyInstanceUID,
                series.PatientID,
                series.PatientName,
            )
        }
        index.close()
        requests = sent_by[name]
        assert {path.rsplit("/", 1)[-1] for _, path, _ in requests} == {"task", "join", "reply"}
        for _, _, body in requests:  # everything this site sent, as it left its client
            assert b"DICM" not in body
            assert not [value for value in identifying if value.encode() in body]
        replies = [json.loads(body) for _, path, body in requests if path.endswith("/reply")]
        for reply in replies:
            assert set(reply) == {"session_id", "message_id", "content"}
            records = reply["content"]["records"]
            assert set(records) <= {"arrays", "metrics"}
            if "arrays" in records:
                assert {k: v["shape"] for k, v in records["arrays"]["items"].items()} == {
                    "weights": [len(FEATURES)],
                    "bias": [1],
                }
            assert set(records["metrics"]["items"]) <= set(model.TRAIN_METRICS) | set(
                model.EVALUATE_METRICS
            )
        reply_bytes = sum(len(body) for _, path, body in requests if path.endswith("/reply"))
        sent = federation.audit(name, "learning-update-sent")
        received = [
            e for e in federation.audit("a", "learning-update-received") if e["peer"] == name
        ]
        assert len(sent) == len(replies) == len(received) == 2 * 4
        assert sum(e["bytes"] for e in sent) == reply_bytes
        assert sum(e["bytes"] for e in received) == reply_bytes
        assert all(e["tensors"] in ({}, {"weights": [len(FEATURES)], "bias": [1]}) for e in sent)
        # What the coordinator handed this peer: each round's model, audited as its egress.
        handed = [e for e in federation.audit("a", "learning-task-sent") if e["peer"] == name]
        assert len(handed) >= len(replies)
        assert all(e["tensors"] == {"weights": [len(FEATURES)], "bias": [1]} for e in handed)
    for site in federation.sites.values():  # the task and the service appended concurrently
        assert site.exchange.audit.verify_chain() == []


def test_a_site_below_its_minimum_cohort_declines_and_says_why(federation: Federation) -> None:
    federation.learning["c"] = {"min_cohort": 50}
    results = federation.run(federation.spec())

    assert isinstance(results["c"], ParticipationFailed)
    assert results["c"].reason == "min-cohort"
    assert "at least 50" in str(results["c"])
    assert results["a"]["sites"] and len(results["a"]["sites"]) == 2  # a and b went on
    [declined] = federation.audit("a", "learning-declined")
    assert declined["peer"] == "c" and declined["reason"] == "min-cohort"
    assert federation.audit("c", "learning-update-sent") == []


def test_a_spec_asking_for_weaker_privacy_is_refused_by_the_site(
    federation: Federation,
) -> None:
    federation.learning["b"] = {"dp_clipping_norm": 1.0, "dp_epsilon": 5.0}
    spec = federation.spec(privacy={"dp_clipping_norm": 2.0, "dp_epsilon": 10.0})
    results = federation.run(spec)

    assert isinstance(results["b"], ParticipationFailed) and results["b"].reason == "privacy"
    assert "weaker privacy" in str(results["b"])
    assert federation.audit("b", "learning-update-sent") == []
    assert isinstance(results["a"], dict), (repr(results["c"]), repr(results["a"]))
    assert len(results["a"]["sites"]) == 2  # a and c


def test_a_site_requiring_secure_aggregation_refuses_the_run_and_sends_nothing(
    federation: Federation,
) -> None:
    federation.learning["c"] = {"secure_aggregation": True}
    results = federation.run(federation.spec())

    assert isinstance(results["c"], ParticipationFailed) and results["c"].reason == "privacy"
    assert "secure aggregation (SecAgg+)" in str(results["c"])
    assert federation.audit("c", "learning-update-sent") == []
    [declined] = federation.audit("a", "learning-declined")
    assert declined["peer"] == "c" and declined["reason"] == "privacy"
    assert isinstance(results["a"], dict) and len(results["a"]["sites"]) == 2  # a and b


def test_too_few_sites_fail_the_run_with_the_reasons(federation: Federation) -> None:
    federation.learning["b"] = {"min_cohort": 50}
    federation.learning["c"] = {"min_cohort": 50}
    results = federation.run(federation.spec(min_sites=3))

    assert isinstance(results["a"], CoordinationFailed)
    assert "only 1 sites take part, the spec needs 3" in str(results["a"])
    assert "b: min-cohort" in str(results["a"]) and "c: min-cohort" in str(results["a"])


def test_a_site_that_stops_mid_run_does_not_hang_the_others(
    federation: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openjip.learning.participant import Participant

    answer = Participant.answer
    answered_by_c: list[int] = []

    def c_stops_after_round_one(self: Participant, task: dict[str, Any], *args: Any) -> int:
        if self.audit.path.is_relative_to(federation.sites["c"].home):
            if len(answered_by_c) == 2:  # its train and evaluate replies of round 1
                raise ParticipationFailed("stopped", "this site stopped (test)")
            answered_by_c.append(task["round"])
        return answer(self, task, *args)

    monkeypatch.setattr(Participant, "answer", c_stops_after_round_one)
    spec = federation.spec(round_timeout_seconds=3)
    results = federation.run(spec)

    assert isinstance(results["c"], ParticipationFailed) and results["c"].reason == "stopped"
    assert isinstance(results["a"], dict), results  # rounds 2.. went on with a and b
    metrics = federation.stored("a", "metrics.json")
    assert len(metrics["rounds"]) == spec.rounds
    received = {(e["peer"], e["round"]) for e in federation.audit("a", "learning-update-received")}
    assert ("c", 1) in received and ("c", 2) not in received
    assert ("b", spec.rounds) in received


def test_an_unknown_site_cannot_join_or_fetch_rounds(
    federation: Federation, make_site: Callable[..., Any]
) -> None:
    stranger = make_site("stranger")
    stranger.trust(federation.sites["a"])  # it knows a; a does not know it
    with stranger.exchange.client(stranger.exchange.peers.get("a")) as client:
        status, body = client.request("GET", f"/v1/learning/{WORKFLOW}/task")
        assert status == 403 and b"not a peer" in body
        status, _ = client.request("POST", f"/v1/learning/{WORKFLOW}/reply", b"{}")
        assert status == 403
    # Nor do the internal routes open without the site's loopback secret.
    import httpx

    response = httpx.get(f"{federation.sites['a'].url}/internal/v1/learning/{WORKFLOW}")
    assert response.status_code == 401
