"""A receiver sized to the load (``receiver.workers = 0``) starts two worker processes and
starts another when a new association finds every worker busy; the new one takes associations
once ready, and every association stores."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from receiver_peers import indexed_instances, scu

from openjip.phantom import write_ct_series
from openjip.receiver.service import INITIAL_WORKERS


@pytest.fixture(scope="module")
def series_8(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_ct_series(tmp_path_factory.mktemp("growth"), slices=8, rows=16, columns=16)


def test_workers_grow_when_all_are_busy(
    receiver_factory: Callable[..., Any],
    series_8: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("openjip.receiver.service.default_workers", lambda: 4)
    receiver = receiver_factory(workers=0)
    pool = receiver.service._pool
    assert pool is not None and len(pool._processes) == INITIAL_WORKERS == 2
    syntax = dcmread(series_8[0], stop_before_pixels=True).file_meta.TransferSyntaxUID
    contexts = [(CTImageStorage, [syntax])]
    with scu(receiver.address, contexts) as first, scu(receiver.address, contexts) as second:
        assert len(pool._processes) == 2  # the second found a worker with nothing to do
        with scu(receiver.address, contexts) as third:  # both busy: a third worker starts
            assert len(pool._processes) == 3
            deadline = time.monotonic() + 120
            while not all(pool._ready) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert all(pool._ready)
            with scu(receiver.address, contexts) as fourth:
                assert pool._busy[2] >= 1  # the new worker took the next association
                for assoc, path in zip((first, second, third, fourth), series_8[:4], strict=True):
                    assert int(assoc.send_c_store(path).Status) == 0
    assert len(indexed_instances(receiver.settings)) == 4
