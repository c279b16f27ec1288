"""A seeded batch of the protocol fuzzer (tests/fuzz/protocol_fuzz.py) against a receiver
with either P-DATA reader: after every 100 cases the receiver answers C-ECHO, has no temp file
left and has indexed nothing it did not acknowledge, no connection outlived its limits, and
memory and threads stay flat."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any

import pytest
from protocol_fuzz import (
    FUZZ_LIMITS,
    MUTATIONS,
    CaseMaker,
    receiver_health,
    rss_bytes,
    run_batch,
    unexplained,
)
from receiver_peers import dataset_bytes, indexed_instances

from openjip.receiver.incoming import incoming_root
from openjip.storage.local import LocalObjectStore

SEED = 16
CASES, BATCH = 300, 100


@pytest.mark.parametrize("pdata_reader", ["openjip", "pynetdicom"])
def test_a_seeded_protocol_fuzz_batch_leaves_the_receiver_whole(
    receiver_factory: Callable[..., Any], pdata_reader: str
) -> None:
    limits = {key: value for key, value in FUZZ_LIMITS.items() if key != "port"}
    receiver = receiver_factory(pdata_reader=pdata_reader, **limits)
    maker = CaseMaker(SEED)
    acknowledged: set[str] = set()
    seen: set[str] = set()
    memory: list[int] = []
    threads = threading.active_count()
    for first in range(0, CASES, BATCH):
        report = run_batch(receiver.address, maker, first, BATCH)
        assert report.held_too_long == [], "connections held beyond the receiver's limits"
        acknowledged |= report.acknowledged
        seen |= set(report.mutations)
        alive, left = receiver_health(receiver.address, incoming_root(receiver.settings), 10)
        assert alive, "no C-ECHO answer after a batch"
        assert left == [], "temp files left"
        store = LocalObjectStore(receiver.settings.storage_path)
        stored = {
            record.SOPInstanceUID: dataset_bytes(store.get(record.object_key))
            for record in indexed_instances(receiver.settings)
        }
        assert acknowledged <= set(stored), "acknowledged but not indexed"
        assert unexplained(maker, stored, acknowledged) == [], "indexed from a broken case"
        gc.collect()
        memory.append(rss_bytes())
    assert acknowledged, "no case was stored: the fuzzer sends nothing valid"
    assert seen == set(MUTATIONS)
    assert memory[-1] - memory[0] < 64 * 2**20
    assert threading.active_count() <= threads + 4
