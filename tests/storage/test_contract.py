"""The ObjectStore contract: every backend (local directory, real S3 server) behaves alike."""

from __future__ import annotations

import io
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from openjip.storage import InvalidKey, ObjectNotFound, ObjectStore, StoreUnavailable

INVALID_KEYS = [
    "",
    "/absolute",
    "a/../b",
    "../escape",
    "./a",
    "a//b",
    "trailing/",
    "with space",
    "back\\slash",
    "tilde~",
    "ünicode",
]


def payload(size: int, seed: int = 0) -> bytes:
    """Bytes that differ at every position and between seeds, so mix-ups show."""
    block = bytes((seed * 31 + i * 7) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


def test_bytes_round_trip(store: ObjectStore) -> None:
    data = payload(512 * 1024)
    info = store.put("dicom/1.2.3/4.5.6/7.8.9.dcm", data)
    assert (info.key, info.size) == ("dicom/1.2.3/4.5.6/7.8.9.dcm", len(data))
    assert abs(info.modified - datetime.now(UTC)) < timedelta(minutes=1)
    assert store.get("dicom/1.2.3/4.5.6/7.8.9.dcm") == data
    head = store.head("dicom/1.2.3/4.5.6/7.8.9.dcm")
    assert head is not None
    assert (head.key, head.size) == ("dicom/1.2.3/4.5.6/7.8.9.dcm", len(data))


def test_stream_round_trip(store: ObjectStore) -> None:
    data = payload(300_000, seed=1)
    assert store.put("results/stream.bin", io.BytesIO(data)).size == len(data)
    with store.open("results/stream.bin") as stream:
        parts = []
        while chunk := stream.read(65536):
            parts.append(chunk)
    assert b"".join(parts) == data


class OneWayStream(io.RawIOBase):
    """A stream that cannot seek (like a socket), and can break after ``fail_after`` bytes."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self._data, self._position, self._fail_after = data, 0, fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._fail_after is not None and self._position >= self._fail_after:
            raise ConnectionResetError("the sender went away")
        chunk = self._data[self._position : self._position + min(len(buffer), 65536)]
        buffer[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)


def test_unseekable_stream_round_trip(store: ObjectStore) -> None:
    data = payload(1_000_000, seed=6)
    assert store.put("results/pipe.bin", OneWayStream(data)).size == len(data)  # type: ignore[arg-type]
    assert store.get("results/pipe.bin") == data


def test_broken_stream_stores_nothing(store: ObjectStore) -> None:
    store.put("results/old.bin", b"old")
    broken = OneWayStream(payload(1_000_000), fail_after=300_000)
    with pytest.raises(StoreUnavailable):
        store.put("results/old.bin", broken)  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable):
        store.put("results/new.bin", OneWayStream(payload(10), fail_after=0))  # type: ignore[arg-type]
    assert store.get("results/old.bin") == b"old"
    assert [info.key for info in store.list()] == ["results/old.bin"]


def test_empty_object(store: ObjectStore) -> None:
    store.put("empty", b"")
    assert store.get("empty") == b""
    assert store.head("empty") is not None


def test_put_file_copies(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "in.dcm"
    source.write_bytes(payload(100_000, seed=2))
    info = store.put_file("dicom/s/t/u.dcm", source)
    assert info.size == 100_000
    assert store.get("dicom/s/t/u.dcm") == source.read_bytes()
    assert source.exists()


def test_put_file_move_consumes_source(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "in.dcm"
    data = payload(70_000, seed=3)
    source.write_bytes(data)
    assert store.put_file("dicom/s/t/v.dcm", source, move=True).size == len(data)
    assert not source.exists()
    assert store.get("dicom/s/t/v.dcm") == data


def test_overwrite_replaces_whole_object(store: ObjectStore) -> None:
    store.put("a/key", payload(200_000, seed=4))
    store.put("a/key", b"short")
    assert store.get("a/key") == b"short"
    head = store.head("a/key")
    assert head is not None and head.size == 5
    assert [info.key for info in store.list("a/")] == ["a/key"]


def test_list_by_prefix_in_key_order(store: ObjectStore) -> None:
    # '-' < '/' < '0' in key order: a directory walk that sorts names alone gets this wrong.
    keys = [
        "a/c",
        "a-b",
        "a0",
        "ab/x/y",
        "dicom/1.10/9/1.dcm",
        "dicom/1.2/3/2.dcm",
        "dicom/1.2/3/10.dcm",
        "dicom/1.2/30/1.dcm",
        "z",
    ]
    for index, key in enumerate(keys):
        store.put(key, f"object {index}".encode())
    listed = list(store.list())
    assert [info.key for info in listed] == sorted(keys)
    assert {info.key: info.size for info in listed} == {
        key: len(f"object {index}") for index, key in enumerate(keys)
    }
    assert [i.key for i in store.list("dicom/1.2/")] == [
        "dicom/1.2/3/10.dcm",
        "dicom/1.2/3/2.dcm",
        "dicom/1.2/30/1.dcm",
    ]
    assert [i.key for i in store.list("dicom/1.")] == sorted(k for k in keys if "1." in k)
    assert [i.key for i in store.list("a")] == ["a-b", "a/c", "a0", "ab/x/y"]
    assert [i.key for i in store.list("a/")] == ["a/c"]
    assert list(store.list("dicom/9")) == []
    assert list(store.list("nothing/here/")) == []
    assert list(store.list("../")) == []


def test_head_and_get_of_missing_key(store: ObjectStore) -> None:
    store.put("present/x", b"1")
    assert store.head("missing") is None
    assert store.head("present") is None  # a prefix is not an object
    with pytest.raises(ObjectNotFound):
        store.get("missing")
    with pytest.raises(ObjectNotFound):
        store.get("present")
    with pytest.raises(KeyError):
        store.open("present/y")


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put("d/1", b"one")
    store.put("d/2", b"two")
    store.delete("d/1")
    assert store.head("d/1") is None
    store.delete("d/1")
    store.delete("never/existed")
    assert [info.key for info in store.list()] == ["d/2"]
    store.delete("d/2")
    assert list(store.list()) == []
    store.put("d/1", b"again")
    assert store.get("d/1") == b"again"


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_invalid_keys_are_rejected(store: ObjectStore, key: str, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    with pytest.raises(InvalidKey):
        store.put(key, b"x")
    with pytest.raises(InvalidKey):
        store.put_file(key, source)
    with pytest.raises(InvalidKey):
        store.get(key)
    with pytest.raises(InvalidKey):
        store.head(key)
    with pytest.raises(InvalidKey):
        store.delete(key)
    assert list(store.list()) == []


def test_concurrent_puts_to_one_key_leave_one_whole_object(store: ObjectStore) -> None:
    versions = [payload(256 * 1024, seed=seed) for seed in range(8)]
    start = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def write(data: bytes) -> None:
        start.wait()
        try:
            for _ in range(3):
                store.put("dicom/same/key.dcm", data)
        except BaseException as error:  # collected and asserted on below
            errors.append(error)
            raise

    threads = [threading.Thread(target=write, args=(data,)) for data in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.get("dicom/same/key.dcm") in versions
    assert [info.key for info in store.list()] == ["dicom/same/key.dcm"]


def test_large_object(store: ObjectStore, tmp_path: Path) -> None:
    data = payload(8 * 1024 * 1024 + 13, seed=5)
    assert store.put("large/bytes", data).size == len(data)
    assert store.get("large/bytes") == data
    source = tmp_path / "large"
    source.write_bytes(data)
    store.put_file("large/file", source)
    target = tmp_path / "out" / "large"
    store.download("large/file", target)
    assert target.read_bytes() == data
    assert store.put("large/stream", io.BytesIO(data)).size == len(data)
    assert store.get("large/stream") == data


def test_check_passes_on_a_working_store(store: ObjectStore) -> None:
    store.check()
    store.put("after/check", b"ok")
    assert store.get("after/check") == b"ok"


def test_files_of_the_store_are_objects_only(store: ObjectStore, tmp_path: Path) -> None:
    """Nothing a store writes for itself (temporary files, probes) shows up as an object."""
    store.check()
    for index in range(20):
        store.put(f"many/{index:03d}", os.urandom(1000))
    assert [info.key for info in store.list()] == [f"many/{i:03d}" for i in range(20)]
