"""The S3 receive cache beyond the contract: acknowledged while S3 is unreachable, uploads
resumed by the next process, claims of killed uploads recovered, files private."""

from __future__ import annotations

import os
import socket
import stat
import uuid
from pathlib import Path
from typing import Any

from openjip.storage.cached import CachedObjectStore
from openjip.storage.s3 import S3ObjectStore

KEY = "dicom/1.2/3.4/5.6.dcm"


def _bucket(s3_server: Any) -> S3ObjectStore:
    return S3ObjectStore.from_settings(s3_server.storage_settings(f"t-{uuid.uuid4().hex[:16]}"))


def _unreachable(s3_server: Any) -> S3ObjectStore:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    settings = s3_server.storage_settings("nowhere").model_copy(
        update={"s3_endpoint": f"127.0.0.1:{port}"}
    )
    return S3ObjectStore.from_settings(settings)


def _next_process(s3_server: Any, cache: Path) -> tuple[S3ObjectStore, CachedObjectStore]:
    """A new bucket, and a store over it and ``cache`` that started and uploaded the cache."""
    remote = _bucket(s3_server)
    store = CachedObjectStore(remote, cache)
    store.check()
    assert store.wait_uploaded(30)
    return remote, store


def test_puts_are_kept_while_s3_is_unreachable_and_uploaded_by_the_next_process(
    s3_server: Any, tmp_path: Path
) -> None:
    offline = CachedObjectStore(_unreachable(s3_server), tmp_path / "cache", uploaders=2)
    source = tmp_path / "in.dcm"
    source.write_bytes(b"instance")
    offline.put_file(KEY, source, move=True)
    offline.put("dicom/1.2/3.4/7.8.dcm", b"other")
    assert not offline.wait_uploaded(0.5)
    cached = tmp_path / "cache" / "objects" / KEY
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert stat.S_IMODE(cached.parent.stat().st_mode) == 0o700
    assert offline.get(KEY) == b"instance"
    head = offline.head(KEY)
    assert head is not None and head.size == 8

    remote, restarted = _next_process(s3_server, tmp_path / "cache")
    assert remote.get(KEY) == b"instance"
    assert remote.get("dicom/1.2/3.4/7.8.dcm") == b"other"
    assert [p for p in (tmp_path / "cache" / "objects").rglob("*") if p.is_file()] == []
    assert restarted.get(KEY) == b"instance"  # now read from S3
    assert [info.key for info in restarted.list("dicom/")] == [KEY, "dicom/1.2/3.4/7.8.dcm"]


def test_claim_of_a_killed_upload_is_put_back_and_uploaded(s3_server: Any, tmp_path: Path) -> None:
    directory = tmp_path / "cache" / "objects" / "dicom" / "1.2" / "3.4"
    directory.mkdir(parents=True)
    # Killed after claiming the file, before removing it (its PUT may or may not have ended).
    (directory / ".5.6.dcm~up~4242-0").write_bytes(b"claimed")
    # Killed after claiming an older copy, a newer one having arrived since: the newer wins.
    (directory / ".9.dcm~up~4242-1").write_bytes(b"older")
    (directory / "9.dcm").write_bytes(b"newer")
    remote, _ = _next_process(s3_server, tmp_path / "cache")
    assert remote.get(KEY) == b"claimed"
    assert remote.get("dicom/1.2/3.4/9.dcm") == b"newer"
    assert sorted(os.listdir(tmp_path / "cache" / "objects")) == []


def test_delete_removes_both_places(s3_server: Any, tmp_path: Path) -> None:
    remote = _bucket(s3_server)
    store = CachedObjectStore(remote, tmp_path / "cache")
    store.put(KEY, b"a")
    assert store.wait_uploaded(30)
    store.put("dicom/1.2/3.4/9.dcm", b"b")
    store.delete(KEY)
    store.delete("dicom/1.2/3.4/9.dcm")
    assert store.wait_uploaded(30)
    assert list(store.list()) == [] and list(remote.list()) == []
