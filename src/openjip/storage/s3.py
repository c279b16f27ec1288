"""The S3 object store: objects in one bucket of an S3 server (MinIO in the chart), via ``minio``.

A PUT is atomic in S3, so ``put`` needs no temporary name. The bucket is created on first use.
Every failure to reach or use the server becomes :class:`StoreUnavailable` with the endpoint
and the server's reason; only a missing object is :class:`ObjectNotFound` (or ``None``).
"""

from __future__ import annotations

import io
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from openjip.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    StoreUnavailable,
    check_key,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from urllib3 import BaseHTTPResponse

    from openjip.config.settings import StorageSettings

# minio's own defaults wait 5 minutes to connect and keep 10 connections; the receiver runs
# dozens of associations at once and must answer 0xA700 quickly when the server is down.
_CONNECT_TIMEOUT_S = 5.0
_READ_TIMEOUT_S = 120.0
_POOL_SIZE = 64
_RETRIES = urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504])
# Streams of unknown length are sent in parts of this size (S3's minimum is 5 MiB).
_PART_SIZE = 16 << 20
_READ_BUFFER = 1 << 20
_MISSING = ("NoSuchKey", "NoSuchObject")

_Failure = (MinioException, urllib3.exceptions.HTTPError, OSError)


class S3ObjectStore(ObjectStore):
    """Objects as keys of one S3 bucket."""

    def __init__(self, client: Minio, bucket: str, *, endpoint: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.endpoint = endpoint or "S3"
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: StorageSettings) -> S3ObjectStore:
        """A store on the endpoint, bucket and credentials of the storage settings."""
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=_CONNECT_TIMEOUT_S, read=_READ_TIMEOUT_S),
            maxsize=_POOL_SIZE,
            retries=_RETRIES,
        )
        client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key or None,
            secret_key=settings.s3_secret_key.get_secret_value() or None,
            secure=settings.s3_secure,
            region=settings.s3_region,
            http_client=http,
        )
        return cls(client, settings.s3_bucket, endpoint=settings.s3_endpoint)

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.endpoint!r}, bucket={self.bucket!r})"

    # -- writing -------------------------------------------------------------------------

    def put(self, key: str, data: bytes | BinaryIO) -> ObjectInfo:
        """Upload ``data`` in one PUT (or a multipart upload for large streams)."""
        check_key(key)
        self._ensure_bucket()
        if isinstance(data, bytes | bytearray | memoryview):
            size = len(data)
            stream: BinaryIO = io.BytesIO(data)
            length, part_size = size, 0
        elif (length := _file_length(data)) >= 0:
            stream, size, part_size = data, length, 0
        else:
            stream, length, part_size = data, -1, _PART_SIZE
        start = stream.tell() if length < 0 and stream.seekable() else None
        with self._translate("write", key):
            self.client.put_object(
                self.bucket, key, stream, length, part_size=part_size, num_parallel_uploads=1
            )
        if length < 0:
            size = stream.tell() - start if start is not None else self._size_of(key)
        return ObjectInfo(key, size, datetime.now(UTC))

    def put_file(self, key: str, path: Path, *, move: bool = False) -> ObjectInfo:
        """Upload the file, streaming it from disk; with ``move`` remove it afterwards."""
        check_key(key)
        try:
            size = os.stat(path).st_size
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror}") from error
        self._ensure_bucket()
        with self._translate("write", key):
            self.client.fput_object(self.bucket, key, os.fspath(path), num_parallel_uploads=1)
        if move:
            Path(path).unlink(missing_ok=True)
        return ObjectInfo(key, size, datetime.now(UTC))

    def delete(self, key: str) -> None:
        """Delete the object; S3 answers a delete of a missing key with success too."""
        check_key(key)
        with self._translate("delete", key):
            self.client.remove_object(self.bucket, key)

    # -- reading -------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        """Download the whole object."""
        check_key(key)
        with self._translate("read", key):
            response = self.client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def open(self, key: str) -> BinaryIO:
        """Stream the object; closing the stream gives the connection back to the pool."""
        check_key(key)
        with self._translate("read", key):
            response = self.client.get_object(self.bucket, key)
        return io.BufferedReader(_ResponseStream(response, self, key), _READ_BUFFER)

    def head(self, key: str) -> ObjectInfo | None:
        """Describe the object from a HEAD request, ``None`` when there is none."""
        check_key(key)
        try:
            with self._translate("stat", key):
                found = self.client.stat_object(self.bucket, key)
        except ObjectNotFound:
            return None
        return ObjectInfo(key, found.size or 0, found.last_modified or datetime.now(UTC))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """List the bucket under ``prefix`` in key order.

        The listing is gathered, then sorted: servers that keep objects in directories
        (SeaweedFS among them) return "a/c" before "a-b", which is not S3's key order.
        """
        found: list[ObjectInfo] = []
        try:
            with self._translate("list", prefix):
                listing = self.client.list_objects(
                    self.bucket, prefix=prefix or None, recursive=True
                )
                for item in listing:
                    if item.is_dir or item.object_name is None:
                        continue
                    modified = item.last_modified or datetime.now(UTC)
                    found.append(ObjectInfo(item.object_name, item.size or 0, modified))
        except ObjectNotFound:
            return  # no bucket yet, so no object either
        found.sort(key=lambda info: info.key)
        yield from found

    def check(self) -> None:
        """Reach the server and make sure the bucket exists."""
        self._bucket_ready = False
        self._ensure_bucket()

    # -- internals -----------------------------------------------------------------------

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._bucket_lock, self._translate("create the bucket", ""):
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as error:
                    # Another process created it between our check and our create.
                    if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            self._bucket_ready = True

    def _size_of(self, key: str) -> int:
        info = self.head(key)
        if info is None:
            raise StoreUnavailable(f"S3 {self.endpoint}: object {key!r} vanished after its PUT")
        return info.size

    @contextmanager
    def _translate(self, action: str, key: str) -> Iterator[None]:
        """Turn client and connection errors into store errors that name the cause."""
        try:
            yield
        except S3Error as error:
            if error.code in _MISSING:
                raise ObjectNotFound(key) from error
            if error.code == "NoSuchBucket":
                self._bucket_ready = False
                if action in ("read", "stat", "list"):
                    raise ObjectNotFound(key) from error
            raise self._unavailable(action, key, f"{error.code}: {error.message}") from error
        except _Failure as error:
            raise self._unavailable(action, key, _reason(error)) from error

    def _unavailable(self, action: str, key: str, reason: str) -> StoreUnavailable:
        target = f" {key!r}" if key else ""
        return StoreUnavailable(
            f"S3 {self.endpoint} bucket {self.bucket!r}: cannot {action}{target}: {reason}"
        )


class _ResponseStream(io.RawIOBase):
    """A readable raw stream over an S3 GET response that reports failures as store errors."""

    def __init__(self, response: BaseHTTPResponse, store: S3ObjectStore, key: str) -> None:
        self._response = response
        self._store = store
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        with self._store._translate("read", self._key):
            data = self._response.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._response.release_conn()
        super().close()


def _file_length(stream: BinaryIO) -> int:
    """The bytes left in ``stream`` when it is a regular file, else -1 (a length unknown)."""
    try:
        info = os.fstat(stream.fileno())
        position = stream.tell()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return -1
    return info.st_size - position if stat.S_ISREG(info.st_mode) else -1


def _reason(error: BaseException) -> str:
    """The innermost cause of a connection failure, e.g. "Connection refused"."""
    while isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        error = error.reason
    text = str(error)
    if isinstance(error, urllib3.exceptions.NewConnectionError) and ":" in text:
        text = text.rsplit(":", 1)[1].strip()
    return text or type(error).__name__
