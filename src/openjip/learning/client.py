"""The Flower ``ClientApp`` of a training site: trains and evaluates on the site's own cohort.

Train messages are answered with the locally trained ``weights`` and ``bias`` and the metrics of
:data:`~openjip.learning.model.TRAIN_METRICS`; evaluate messages with those of
:data:`~openjip.learning.model.EVALUATE_METRICS`, computed on the cohort's held-out part.
Privacy is a Flower mod: ``LocalDpMod`` (clipping and Gaussian noise) when the site's decided
privacy has an ε, else clipping alone with Flower's own clipping function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import LocalDpMod
from flwr.clientapp.typing import ClientAppCallable
from flwr.supercore.differential_privacy import compute_clip_model_update

from openjip.learning.limits import Privacy
from openjip.learning.model import TENSORS, Cohort, Vector, evaluate, train

Mod = Callable[[Message, Context, ClientAppCallable], Message]


@dataclass(frozen=True)
class LocalTraining:
    """How a site trains in each round."""

    epochs: int
    learning_rate: float


def parameters_of(content: RecordDict | ArrayRecord) -> list[Vector]:
    """The model's arrays in :data:`TENSORS` order (of a message's ``arrays`` record)."""
    record = content if isinstance(content, ArrayRecord) else content.array_records["arrays"]
    return [np.asarray(record[name].numpy(), dtype=np.float64) for name in TENSORS]


def record_of(parameters: list[Vector], order: list[str] | None = None) -> ArrayRecord:
    """The ``ArrayRecord`` holding the model's arrays by name, in ``order`` when given (a reply
    keeps the order of the record it answers: Flower's privacy mods compare the keys in order)."""
    named = dict(zip(TENSORS, parameters, strict=True))
    return ArrayRecord({name: Array(np.asarray(named[name])) for name in order or TENSORS})


def _order(message: Message) -> list[str]:
    return list(message.content.array_records["arrays"].keys())


def _clipping_mod(norm: float) -> Mod:
    """Clip each train reply's update to ``norm`` (Flower's ``compute_clip_model_update``)."""

    def mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        sent = parameters_of(message.content)
        reply = call_next(message, context)
        if message.metadata.message_type == "train" and not reply.has_error():
            update = parameters_of(reply.content)
            compute_clip_model_update(update, sent, norm)
            reply.content["arrays"] = record_of(update, _order(message))
        return reply

    return mod


def privacy_mods(privacy: Privacy) -> list[Mod]:
    """The Flower mods applying ``privacy`` to every train reply."""
    if privacy.clipping_norm is None:
        return []
    if privacy.epsilon is None:
        return [_clipping_mod(privacy.clipping_norm)]
    local_dp = LocalDpMod(
        clipping_norm=privacy.clipping_norm,
        sensitivity=privacy.clipping_norm,
        epsilon=privacy.epsilon,
        delta=privacy.delta or 1e-5,
    )
    # LocalDpMod would also touch evaluate replies, which carry no arrays: train only.

    def train_only(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        if message.metadata.message_type != "train":
            return call_next(message, context)
        return local_dp(message, context, call_next)

    return [train_only]


def client_app(cohort: Cohort, training: LocalTraining, privacy: Privacy) -> ClientApp:
    """The ClientApp of one site over ``cohort`` (split into a train and a test part)."""
    train_part, test_part = cohort.split()
    app = ClientApp(mods=privacy_mods(privacy))

    @app.train()
    def fit(message: Message, context: Context) -> Message:
        parameters = train(
            parameters_of(message.content),
            train_part,
            epochs=training.epochs,
            learning_rate=training.learning_rate,
        )
        scores = evaluate(parameters, train_part)
        metrics = MetricRecord(
            {
                "num-examples": train_part.size,
                "train-loss": scores["loss"],
                "train-accuracy": scores["accuracy"],
            }
        )
        return Message(
            RecordDict({"arrays": record_of(parameters, _order(message)), "metrics": metrics}),
            reply_to=message,
        )

    @app.evaluate()
    def score(message: Message, context: Context) -> Message:
        scores = evaluate(parameters_of(message.content), test_part)
        metrics = MetricRecord(
            {
                "num-examples": test_part.size,
                "eval-loss": scores["loss"],
                "eval-accuracy": scores["accuracy"],
            }
        )
        return Message(RecordDict({"metrics": metrics}), reply_to=message)

    return app


def node_context(node_id: int) -> Context:
    """The Flower context a ClientApp runs in at this site."""
    return Context(run_id=0, node_id=node_id, node_config={}, state=RecordDict(), run_config={})
