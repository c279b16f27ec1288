"""Disk full and store unavailable: 0xA700, nothing stored or indexed, and recovery."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]
from receiver_peers import indexed_instances, scu, stored_objects

from openjip.config import Settings
from openjip.index.sqlite import SQLiteIndex

CT = Path(get_testdata_file("CT_small.dcm"))


def _small_site(settings: Settings, small_filesystem: Path) -> Settings:
    storage = settings.storage.model_copy(update={"path": small_filesystem / "objects"})
    return settings.model_copy(update={"storage": storage})


def _send(receiver: Any) -> Any:
    ds = dcmread(CT)
    with scu(receiver.address, [(CTImageStorage, [ds.file_meta.TransferSyntaxUID])]) as assoc:
        return assoc.send_c_store(ds)


def test_disk_full_gets_out_of_resources_and_recovers(
    receiver_factory: Callable[..., Any], settings: Settings, small_filesystem: Path
) -> None:
    receiver = receiver_factory(_small_site(settings, small_filesystem))
    filler = small_filesystem / "filler"
    with filler.open("wb") as file, contextlib.suppress(OSError):
        while True:
            file.write(b"\0" * 65536)
            file.flush()
    status = _send(receiver)
    assert status.Status == 0xA700
    assert "space" in status.ErrorComment.lower()
    assert stored_objects(receiver.settings) == []
    assert indexed_instances(receiver.settings) == []
    filler.unlink()
    assert _send(receiver).Status == 0x0000
    assert len(indexed_instances(receiver.settings)) == 1
    assert len(stored_objects(receiver.settings)) == 1


def test_store_unavailable_gets_out_of_resources_and_recovers(
    receiver_factory: Callable[..., Any], settings: Settings, small_filesystem: Path
) -> None:
    receiver = receiver_factory(_small_site(settings, small_filesystem))
    subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)
    try:
        status = _send(receiver)
        assert status.Status == 0xA700
        assert "read-only" in status.ErrorComment.lower()
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_filesystem)], check=True)
    assert stored_objects(receiver.settings) == []
    assert indexed_instances(receiver.settings) == []
    assert _send(receiver).Status == 0x0000
    assert len(indexed_instances(receiver.settings)) == 1


def test_a_removed_index_gets_out_of_resources_until_one_is_back(
    receiver_factory: Callable[..., Any],
) -> None:
    receiver = receiver_factory()
    index_path = receiver.settings.index_path
    assert _send(receiver).Status == 0x0000
    for path in index_path.parent.glob(index_path.name + "*"):
        path.unlink()
    status = _send(receiver)
    assert status.Status == 0xA700
    assert "index" in status.ErrorComment.lower()
    assert not index_path.exists()  # nothing acknowledged into a deleted file
    back = SQLiteIndex(index_path)  # an index is back (empty, as after `rm`; rebuild refills)
    back.check()
    back.close()
    assert _send(receiver).Status == 0x0000
    assert len(indexed_instances(receiver.settings)) == 1
