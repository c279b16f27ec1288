"""Fixtures of the storage tests: a fresh, empty store of each backend."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from openjip.storage import ObjectStore
from openjip.storage.local import LocalObjectStore
from openjip.storage.s3 import S3ObjectStore


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """An empty store: a local directory, or a new bucket on the session's real S3 server."""
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    s3_server: Any = request.getfixturevalue("s3_server")
    return S3ObjectStore.from_settings(s3_server.storage_settings(f"t-{uuid.uuid4().hex[:16]}"))
