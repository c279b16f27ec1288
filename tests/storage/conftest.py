"""Fixtures of the storage tests: a fresh, empty store of each backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openjip.storage import ObjectStore
from openjip.storage.cached import CachedObjectStore
from openjip.storage.local import LocalObjectStore
from openjip.storage.s3 import S3ObjectStore


@pytest.fixture(params=["local", "s3", "s3-cached", "s3-cached-uploaded"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """An empty store: a local directory, a new bucket on the session's real S3 server, or
    such a bucket behind a receive cache (read before, or after, every upload finished)."""
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "objects")
        return
    s3_server: Any = request.getfixturevalue("s3_server")
    remote = S3ObjectStore.from_settings(s3_server.storage_settings(f"t-{uuid.uuid4().hex[:16]}"))
    if request.param == "s3":
        yield remote
        return
    cached = CachedObjectStore(remote, tmp_path / "cache", uploaders=3)
    if request.param == "s3-cached":
        yield cached
        return
    yield _UploadedFirst(cached)


class _UploadedFirst(CachedObjectStore):
    """A cached store whose every write waits for its upload, so reads come from S3."""

    def __init__(self, cached: CachedObjectStore) -> None:
        self.__dict__.update(cached.__dict__)

    def put(self, key: str, data: Any) -> Any:
        info = super().put(key, data)
        assert self.wait_uploaded(30)
        return info

    def put_file(self, key: str, path: Path, *, move: bool = False) -> Any:
        info = super().put_file(key, path, move=move)
        assert self.wait_uploaded(30)
        return info
