"""The S3 store beyond the contract: a server that goes away, wrong credentials, the bucket."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from minio import Minio
from pydantic import SecretStr

from openjip.config import Settings
from openjip.storage import StoreUnavailable, open_store
from openjip.storage.s3 import S3ObjectStore


def test_stopped_server_makes_the_store_unavailable(
    s3_server_factory: Callable[[], Any], tmp_path: Path
) -> None:
    server = s3_server_factory()
    store = S3ObjectStore.from_settings(server.storage_settings("short-lived"))
    store.put("dicom/1/2/3.dcm", b"before")
    server.stop()

    where = f"S3 {server.endpoint} bucket 'short-lived'"
    with pytest.raises(StoreUnavailable, match=f"{where}: cannot write .*Connection refused"):
        store.put("dicom/1/2/4.dcm", b"after")
    source = tmp_path / "x.dcm"
    source.write_bytes(b"after")
    with pytest.raises(StoreUnavailable, match=where):
        store.put_file("dicom/1/2/4.dcm", source, move=True)
    assert source.exists()
    with pytest.raises(StoreUnavailable, match=where):
        store.get("dicom/1/2/3.dcm")
    with pytest.raises(StoreUnavailable, match=where):
        store.head("dicom/1/2/3.dcm")
    with pytest.raises(StoreUnavailable, match=where):
        list(store.list())
    with pytest.raises(StoreUnavailable, match=where):
        store.delete("dicom/1/2/3.dcm")
    with pytest.raises(StoreUnavailable, match=where):
        store.check()


def test_wrong_secret_is_refused(s3_server: Any) -> None:
    settings = s3_server.storage_settings("wrong-secret").model_copy(
        update={"s3_secret_key": SecretStr("not-the-secret")}
    )
    store = S3ObjectStore.from_settings(settings)
    with pytest.raises(StoreUnavailable, match="SignatureDoesNotMatch"):
        store.check()
    with pytest.raises(StoreUnavailable, match="SignatureDoesNotMatch"):
        store.put("k", b"v")


def test_bucket_is_created_on_first_use(s3_server: Any) -> None:
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    client = Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False)
    store = S3ObjectStore.from_settings(s3_server.storage_settings(bucket))
    assert store.head("k") is None
    assert list(store.list()) == []
    assert not client.bucket_exists(bucket)
    store.put("k", b"v")
    assert client.bucket_exists(bucket)
    # A second store (another process of the site) finds the bucket there and shares it.
    other = S3ObjectStore.from_settings(s3_server.storage_settings(bucket))
    other.check()
    assert other.get("k") == b"v"


def test_open_store_chooses_the_s3_backend(
    s3_server: Any, openjip_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENJIP_STORAGE__BACKEND", "s3")
    monkeypatch.setenv("OPENJIP_STORAGE__S3_ENDPOINT", s3_server.endpoint)
    monkeypatch.setenv("OPENJIP_STORAGE__S3_BUCKET", "from-settings")
    monkeypatch.setenv("OPENJIP_STORAGE__S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("OPENJIP_STORAGE__S3_SECRET_KEY", s3_server.secret_key)
    store = open_store(Settings())
    assert isinstance(store, S3ObjectStore)
    store.put("dicom/a/b/c.dcm", b"dicom")
    assert [info.key for info in store.list("dicom/")] == ["dicom/a/b/c.dcm"]
