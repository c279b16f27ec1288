"""32 associations sending at once, in one receiver process and in two worker processes."""

from __future__ import annotations

import multiprocessing
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from receiver_peers import indexed_instances, scu, stored_objects

from openjip.phantom import write_ct_series

ASSOCIATIONS = 32


@pytest.fixture(scope="module")
def series_128(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_ct_series(tmp_path_factory.mktemp("concurrent"), slices=128, rows=32, columns=32)


@pytest.mark.parametrize("workers", [1, 2])
def test_32_concurrent_associations_store_every_instance_once(
    receiver_factory: Callable[..., Any], series_128: list[Path], workers: int
) -> None:
    receiver = receiver_factory(workers=workers)
    syntax = dcmread(series_128[0], stop_before_pixels=True).file_meta.TransferSyntaxUID
    share = len(series_128) // ASSOCIATIONS
    barrier = threading.Barrier(ASSOCIATIONS)
    statuses: list[int] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def send(part: list[Path]) -> None:
        try:
            with scu(receiver.address, [(CTImageStorage, [syntax])]) as assoc:
                barrier.wait(timeout=60)  # every association is open before any sends
                for path in part:
                    status = assoc.send_c_store(path)
                    with lock:
                        statuses.append(int(status.Status))
        except Exception as exc:  # noqa: BLE001 - reported by the main thread below
            with lock:
                errors.append(exc)

    threads = [
        threading.Thread(target=send, args=(series_128[i * share : (i + 1) * share],))
        for i in range(ASSOCIATIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors[:3]
    assert statuses == [0] * len(series_128)
    records = indexed_instances(receiver.settings)
    assert len(records) == len(series_128)
    assert len({r.SOPInstanceUID for r in records}) == len(series_128)
    assert len(stored_objects(receiver.settings)) == len(series_128)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_port_in_use_fails_clearly(receiver_factory: Callable[..., Any], workers: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken, pytest.raises(OSError, match="in use"):
        receiver_factory(port=taken.getsockname()[1], workers=workers)
    assert not [c for c in multiprocessing.active_children() if "openjip" in c.name]
