"""Helpers of the state tests: a site with a CT series received over C-STORE, a federation
identity and users; what a site holds, to compare a restored one with its original."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from openjip.access import UserStore
from openjip.config import Settings
from openjip.federation.exchange import Exchange
from openjip.index.base import Query
from openjip.index.sqlite import SQLiteIndex
from openjip.phantom import write_ct_series
from openjip.storage import open_store


def send(
    address: tuple[str, int], files: list[Path], acknowledged: list[tuple[str, float]]
) -> None:
    """C-STORE each file on one association; append (SOP UID, time) after each success."""
    ae = AE(ae_title="BACKUPSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(*address, ae_title="OPENJIP")
    assert assoc.is_established
    try:
        for path in files:
            dataset = dcmread(path)
            status = assoc.send_c_store(dataset)
            assert status.Status == 0, f"C-STORE status {status.Status:#06x}"
            acknowledged.append((str(dataset.SOPInstanceUID), time.time()))
    finally:
        assoc.release()
        ae.shutdown()


def ct_files(folder: Path, slices: int, series_number: int = 1) -> list[Path]:
    return write_ct_series(folder, slices=slices, rows=32, columns=32, series_number=series_number)


@dataclass
class SiteContents:
    """What a restored site must hold: compared field by field."""

    series: dict[str, str] = field(default_factory=dict)
    """SeriesInstanceUID -> StudyInstanceUID."""
    objects: dict[str, str] = field(default_factory=dict)
    """Object key -> sha256."""
    identity: dict[str, Any] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)


def contents(settings: Settings) -> SiteContents:
    index = SQLiteIndex(settings.index_path)
    try:
        series = {s.SeriesInstanceUID: s.StudyInstanceUID for s in index.find_series(Query())}
    finally:
        index.close()
    store = open_store(settings)
    objects = {info.key: hashlib.sha256(store.get(info.key)).hexdigest() for info in store.list("")}
    federation = settings.federation_dir
    identity = {
        "site.json": json.loads((federation / "site.json").read_text()),
        "site.key": (federation / "site.key").read_bytes(),
    }
    users = sorted(user.name for user in UserStore(settings.access_dir).list())
    return SiteContents(series, objects, identity, users)


@pytest.fixture
def filled_site(
    settings: Settings, receiver_factory: Callable[..., Any], tmp_path: Path
) -> Iterator[tuple[Settings, Any]]:
    """A site with a received 8-slice CT series, a federation identity and two users."""
    receiver = receiver_factory()
    acknowledged: list[tuple[str, float]] = []
    send(receiver.address, ct_files(tmp_path / "ct", 8), acknowledged)
    Exchange(settings.home_dir, settings.federation).init("site-a")
    users = UserStore(settings.access_dir)
    users.create_first_admin()
    users.add("alice", "alice-password", "viewer")
    yield settings, receiver


def wait_until(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
