"""What a site lets leave: its limits against a spec's asks, the privacy mods applied to a real
Flower ClientApp's replies, and the check of every reply's content."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, RecordDict

from openjip.config.learning import LearningSettings
from openjip.federation.canonical import canonical_json
from openjip.federation.errors import BundleRejected
from openjip.federation.guard import check_payload
from openjip.learning.client import LocalTraining, client_app, node_context, record_of
from openjip.learning.limits import JoinRefused, Privacy, check_cohort, decide_privacy
from openjip.learning.model import Cohort, initial_parameters
from openjip.learning.wire import WireRefused, check_reply, decode, encode, shapes
from openjip.workflows.spec import FederatedSpec

FEATURES = ["f1", "f2"]


def spec(**changes: object) -> FederatedSpec:
    values = {"coordinator": "ab" * 16, "features_from": "features", "features": FEATURES}
    return FederatedSpec.model_validate({**values, **changes})


def cohort(size: int = 12) -> Cohort:
    rng = np.random.default_rng(1)
    labels = (np.arange(size) % 2).astype(float)
    features = np.column_stack([labels * 3 + rng.normal(0, 0.3, size), rng.normal(0, 1, size)])
    return Cohort(features, labels, patients=size)


def test_the_larger_minimum_cohort_applies_to_series_and_patients() -> None:
    check_cohort(spec(min_cohort=5), LearningSettings(min_cohort=10), series=10, patients=10)
    with pytest.raises(JoinRefused, match="at least 10") as refused:
        check_cohort(spec(min_cohort=5), LearningSettings(min_cohort=10), series=12, patients=9)
    assert refused.value.reason == "min-cohort"
    with pytest.raises(JoinRefused, match="at least 20"):
        check_cohort(spec(min_cohort=20), LearningSettings(min_cohort=10), series=12, patients=12)


@pytest.mark.parametrize(
    ("asked", "site"),
    [
        ({}, {"dp_clipping_norm": 1.0}),  # the spec asks for no clipping
        ({"dp_clipping_norm": 2.0}, {"dp_clipping_norm": 1.0}),  # a larger norm
        ({"dp_clipping_norm": 1.0}, {"dp_clipping_norm": 1.0, "dp_epsilon": 5.0}),  # no noise
        (
            {"dp_clipping_norm": 1.0, "dp_epsilon": 8.0},
            {"dp_clipping_norm": 1.0, "dp_epsilon": 5.0},
        ),
        (
            {"dp_clipping_norm": 1.0, "dp_epsilon": 5.0, "dp_delta": 1e-3},
            {"dp_clipping_norm": 1.0, "dp_epsilon": 5.0, "dp_delta": 1e-5},
        ),
        ({"dp_epsilon": 5.0}, {}),  # noise without a clipping norm
        ({"dp_clipping_norm": 0.5, "dp_epsilon": 1.0}, {"secure_aggregation": True}),
    ],
)
def test_a_spec_asking_for_weaker_privacy_is_refused(
    asked: dict[str, float], site: dict[str, float]
) -> None:
    with pytest.raises(JoinRefused, match="weaker privacy") as refused:
        decide_privacy(spec(privacy=asked), LearningSettings(**site))
    assert refused.value.reason == "privacy"


def test_a_spec_asking_for_more_privacy_gets_it() -> None:
    privacy = decide_privacy(
        spec(privacy={"dp_clipping_norm": 0.5, "dp_epsilon": 2.0}),
        LearningSettings(dp_clipping_norm=1.0, dp_epsilon=5.0),
    )
    assert privacy == Privacy(clipping_norm=0.5, epsilon=2.0, delta=1e-5)
    assert decide_privacy(spec(), LearningSettings()) == Privacy()


def _train_message(parameters: list[np.ndarray]) -> Message:
    """A train message as a participant gets it: through canonical JSON (keys sorted)."""
    content = RecordDict(
        {"arrays": record_of(parameters), "config": ConfigRecord({"server-round": 1})}
    )
    message = Message(decode(json.loads(canonical_json(encode(content)))), 7, "train")
    message.metadata.__dict__["_message_id"] = "m1"
    return message


def _update_norm(privacy: Privacy) -> float:
    app = client_app(cohort(), LocalTraining(epochs=50, learning_rate=1.0), privacy)
    start = initial_parameters(len(FEATURES))
    reply = app(_train_message(start), node_context(7))
    arrays = reply.content.array_records["arrays"]
    update = np.concatenate(
        [arrays[name].numpy() - s for name, s in zip(("weights", "bias"), start, strict=True)]
    )
    return float(np.linalg.norm(update))


def test_clipping_and_noise_are_applied_by_flowers_mods() -> None:
    unclipped = _update_norm(Privacy())
    assert unclipped > 1.0
    assert _update_norm(Privacy(clipping_norm=0.5)) == pytest.approx(0.5, rel=1e-6)
    noisy = [_update_norm(Privacy(clipping_norm=0.5, epsilon=0.1, delta=1e-5)) for _ in range(3)]
    assert all(
        value > 1.0 for value in noisy
    )  # noise of sd ~24 per value on top of the clipped 0.5
    assert len(set(noisy)) == 3


def test_replies_hold_only_the_declared_tensors_and_metrics() -> None:
    app = client_app(cohort(), LocalTraining(epochs=5, learning_rate=0.5), Privacy())
    sent = _train_message(initial_parameters(len(FEATURES)))
    content = encode(app(sent, node_context(7)).content)
    expected = shapes(encode(sent.content))
    check_reply(content, "train", expected)
    assert decode(content).array_records["arrays"]["weights"].shape == (2,)

    extra_metric = {
        "records": {
            **content["records"],
            "metrics": {
                "kind": "metrics",
                "items": {**content["records"]["metrics"]["items"], "patient-count": 3},
            },
        }
    }
    with pytest.raises(WireRefused, match="undeclared metrics"):
        check_reply(extra_metric, "train", expected)
    extra_record = {
        "records": {**content["records"], "ids": {"kind": "config", "items": {"x": "1"}}}
    }
    with pytest.raises(WireRefused, match="undeclared records"):
        check_reply(extra_record, "train", expected)
    wider = {"weights": [3], "bias": [1]}
    with pytest.raises(WireRefused, match="shapes"):
        check_reply(content, "train", wider)
    with pytest.raises(WireRefused, match="exactly the tensors"):
        check_reply({"records": {"metrics": content["records"]["metrics"]}}, "train", expected)


def test_the_payload_guard_refuses_a_reply_carrying_dicom() -> None:
    smuggled = b'{"records": {"metrics": {"kind": "metrics", "items": {}}}, "x": "DICM"}'
    with pytest.raises(BundleRejected) as refused:
        check_payload(smuggled, max_bytes=256 * 1024)
    assert refused.value.reason == "dicom-payload"
