"""Flower message content as the federation channel carries it, and what may be in it.

Content travels as JSON: each record of a Flower ``RecordDict`` by name, arrays as dtype, shape
and their numbers (no opaque bytes, so a reader of the audit log or of a captured message sees
exactly what left). :func:`check_reply` refuses a reply that holds anything but the model's
declared tensors, with the shapes they were sent with, and the declared scalar metrics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from openjip.learning.model import EVALUATE_METRICS, TENSORS, TRAIN_METRICS


class WireRefused(Exception):
    """A message holds something that may not travel; the message says what."""


def encode(content: RecordDict) -> dict[str, Any]:
    """JSON-ready form of ``content``."""
    records: dict[str, Any] = {}
    for name, record in content.items():
        if isinstance(record, ArrayRecord):
            records[name] = {
                "kind": "arrays",
                "items": {
                    key: {
                        "dtype": str(array.numpy().dtype),
                        "shape": list(array.shape),
                        "values": array.numpy().ravel().tolist(),
                    }
                    for key, array in record.items()
                },
            }
        elif isinstance(record, MetricRecord):
            records[name] = {"kind": "metrics", "items": dict(record)}
        elif isinstance(record, ConfigRecord):
            records[name] = {"kind": "config", "items": dict(record)}
        else:
            raise WireRefused(f"record {name!r} of type {type(record).__name__} cannot travel")
    return {"records": records}


def decode(payload: dict[str, Any]) -> RecordDict:
    """The ``RecordDict`` of an encoded content; :class:`WireRefused` when malformed."""
    content = RecordDict()
    try:
        for name, record in payload["records"].items():
            kind, items = record["kind"], record["items"]
            if kind == "arrays":
                content[name] = ArrayRecord(
                    {
                        key: Array(
                            np.asarray(item["values"], dtype=np.dtype(item["dtype"])).reshape(
                                item["shape"]
                            )
                        )
                        for key, item in items.items()
                    }
                )
            elif kind == "metrics":
                content[name] = MetricRecord(items)
            elif kind == "config":
                content[name] = ConfigRecord(items)
            else:
                raise WireRefused(f"record {name!r} has unknown kind {kind!r}")
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise WireRefused(f"malformed message content: {error}") from error
    return content


def shapes(payload: dict[str, Any]) -> dict[str, list[int]]:
    """Name → shape of every tensor in an encoded content."""
    return {
        key: list(item["shape"])
        for record in payload.get("records", {}).values()
        if record.get("kind") == "arrays"
        for key, item in record["items"].items()
    }


def metric_names(payload: dict[str, Any]) -> list[str]:
    """Names of every metric in an encoded content."""
    return sorted(
        key
        for record in payload.get("records", {}).values()
        if record.get("kind") == "metrics"
        for key in record["items"]
    )


def check_reply(payload: dict[str, Any], message_type: str, sent: dict[str, list[int]]) -> None:
    """Refuse a reply that is more than the declared tensors (shaped as ``sent``) and metrics."""
    records = payload.get("records")
    if not isinstance(records, dict):
        raise WireRefused("a reply holds records")
    declared = TRAIN_METRICS if message_type == "train" else EVALUATE_METRICS
    allowed = {"arrays", "metrics"} if message_type == "train" else {"metrics"}
    if set(records) - allowed:
        raise WireRefused(f"undeclared records {sorted(set(records) - allowed)}")
    if message_type == "train":
        arrays = records.get("arrays", {})
        if arrays.get("kind") != "arrays" or sorted(arrays.get("items", {})) != sorted(TENSORS):
            raise WireRefused(f"a train reply holds exactly the tensors {list(TENSORS)}")
        got = shapes(payload)
        if any(got[name] != sent.get(name) for name in TENSORS):
            raise WireRefused(f"tensor shapes {got} differ from those sent {sent}")
        for item in arrays["items"].values():
            if not all(isinstance(v, int | float) and math.isfinite(v) for v in item["values"]):
                raise WireRefused("tensor values are finite numbers")
    metrics = records.get("metrics", {})
    if metrics.get("kind") != "metrics":
        raise WireRefused("a reply carries its metrics as a metrics record")
    undeclared = set(metrics.get("items", {})) - set(declared)
    if undeclared:
        raise WireRefused(f"undeclared metrics {sorted(undeclared)}")
    if not all(isinstance(v, int | float) for v in metrics["items"].values()):
        raise WireRefused("metrics are numbers")
