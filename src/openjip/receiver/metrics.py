"""Prometheus metrics of the receiver, on their own registry.

With several receiver processes, ``PROMETHEUS_MULTIPROC_DIR`` is set before any of them
imports prometheus_client; the parent then serves the merged values.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

INSTANCES = Counter(
    "openjip_receiver_instances_received",
    "Instances stored and indexed (C-STORE success).",
    registry=REGISTRY,
)
BYTES = Counter(
    "openjip_receiver_bytes_received",
    "Bytes of instances stored (Part-10 files as kept).",
    registry=REGISTRY,
)
FAILURES = Counter(
    "openjip_receiver_failures",
    "C-STORE requests answered with a failure, by DIMSE status.",
    ["status"],
    registry=REGISTRY,
)
OPEN_ASSOCIATIONS = Gauge(
    "openjip_receiver_open_associations",
    "Associations open right now.",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
STORE_SECONDS = Histogram(
    "openjip_receiver_store_write_seconds",
    "Time to write one instance durably to the object store.",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
    registry=REGISTRY,
)
