"""``index rebuild`` over an S3 store behind its receive cache finds every instance, those
already uploaded and those still waiting in the cache."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

from openjip.dicom import instance_key
from openjip.index.base import Query
from openjip.index.sqlite import SQLiteIndex
from openjip.ingest import Ingestor, rebuild_index
from openjip.phantom import write_ct_series
from openjip.storage.cached import CachedObjectStore
from openjip.storage.s3 import S3ObjectStore


def test_rebuild_finds_instances_in_the_bucket_and_in_the_cache(
    s3_server: Any, tmp_path: Path
) -> None:
    files = write_ct_series(tmp_path / "ct", slices=4, rows=16, columns=16)
    bucket = S3ObjectStore.from_settings(s3_server.storage_settings(f"t-{uuid.uuid4().hex[:16]}"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    offline = S3ObjectStore.from_settings(
        s3_server.storage_settings("offline").model_copy(
            update={"s3_endpoint": f"127.0.0.1:{closed}"}
        )
    )
    index = SQLiteIndex(tmp_path / "index.sqlite3")
    # Two instances reached the bucket; two were received while S3 was unreachable.
    uploaded = CachedObjectStore(bucket, tmp_path / "cache")
    for path in files[:2]:
        Ingestor(uploaded, index).ingest_file(path, source_ae="A")
    assert uploaded.wait_uploaded(30)
    waiting = CachedObjectStore(offline, tmp_path / "cache")
    records = [Ingestor(waiting, index).ingest_file(p, source_ae="A").record for p in files[2:]]
    assert not waiting.wait_uploaded(0.2)
    assert all((tmp_path / "cache" / "objects" / r.object_key).is_file() for r in records)

    fresh = SQLiteIndex(tmp_path / "rebuilt.sqlite3")
    report = rebuild_index(CachedObjectStore(bucket, tmp_path / "cache"), fresh)
    assert (report.scanned, report.indexed, report.skipped) == (4, 4, [])
    found = {r.object_key for r in fresh.find_instances(Query())}
    assert found == {
        instance_key(r.StudyInstanceUID, r.SeriesInstanceUID, r.SOPInstanceUID)
        for r in index.find_instances(Query())
    }
