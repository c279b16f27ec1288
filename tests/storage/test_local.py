"""The local store beyond the contract: disk full, read-only disk, renames, temporary files."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from openjip.storage import InvalidKey, StoreUnavailable, open_store
from openjip.storage.local import LocalObjectStore

DICOM_SIZE = 512 * 1024


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def fill(directory: Path, *, leave_free: int = 0) -> Path:
    """Fill the file system of ``directory`` up, then free ``leave_free`` bytes of it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as error:
        assert error.errno == errno.ENOSPC
        os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave_free))
    finally:
        os.close(fd)
    return filler


@contextlib.contextmanager
def read_only(mount_point: Path) -> Iterator[None]:
    subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)
    try:
        yield
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mount_point)], check=True)


def test_disk_full_fails_cleanly_and_recovers(small_filesystem: Path, tmp_path: Path) -> None:
    store = LocalObjectStore(small_filesystem / "objects")
    store.put("dicom/1/2/before.dcm", b"x" * 1000)
    filler = fill(small_filesystem, leave_free=128 * 1024)

    # The object starts to be written, then the disk runs out halfway through it.
    with pytest.raises(StoreUnavailable, match=r"disk full \(ENOSPC\)"):
        store.put("dicom/1/2/3.dcm", b"y" * DICOM_SIZE)
    source = tmp_path / "incoming.dcm"  # on another file system: put_file has to copy
    source.write_bytes(b"w" * DICOM_SIZE)
    with pytest.raises(StoreUnavailable, match="disk full"):
        store.put_file("dicom/1/2/4.dcm", source, move=True)
    assert source.exists()
    with pytest.raises(StoreUnavailable, match="disk full"):
        store.put("dicom/1/2/before.dcm", b"y" * DICOM_SIZE)
    assert files_under(small_filesystem / "objects") == ["dicom/1/2/before.dcm"]
    assert store.get("dicom/1/2/before.dcm") == b"x" * 1000
    assert store.head("dicom/1/2/3.dcm") is None

    fill(small_filesystem)  # now the disk is full to the last block
    with pytest.raises(StoreUnavailable, match="disk full"):
        store.check()
    with pytest.raises(StoreUnavailable, match="disk full"):
        store.put("dicom/9/9/9.dcm", b"z" * 10)
    assert files_under(small_filesystem / "objects") == ["dicom/1/2/before.dcm"]

    filler.unlink()
    store.check()
    store.put("dicom/1/2/3.dcm", b"y" * DICOM_SIZE)
    assert store.get("dicom/1/2/3.dcm") == b"y" * DICOM_SIZE
    assert [i.key for i in store.list()] == ["dicom/1/2/3.dcm", "dicom/1/2/before.dcm"]


def test_read_only_disk(small_filesystem: Path) -> None:
    store = LocalObjectStore(small_filesystem / "objects")
    store.put("a/b", b"kept")
    with read_only(small_filesystem):
        with pytest.raises(StoreUnavailable, match=r"read-only file system \(EROFS\)"):
            store.put("a/c", b"new")
        with pytest.raises(StoreUnavailable, match="read-only"):
            store.put("new/dir/c", b"new")
        with pytest.raises(StoreUnavailable, match="read-only"):
            store.check()
        with pytest.raises(StoreUnavailable, match="read-only"):
            store.delete("a/b")
        assert store.get("a/b") == b"kept"
        assert [i.key for i in store.list()] == ["a/b"]
    store.put("a/c", b"new")
    assert [i.key for i in store.list()] == ["a/b", "a/c"]


def test_move_on_one_file_system_is_a_rename(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    source = tmp_path / "incoming" / "x.dcm"
    source.parent.mkdir()
    source.write_bytes(b"dicom")
    inode = source.stat().st_ino
    store.put_file("dicom/1/2/3.dcm", source, move=True)
    assert (tmp_path / "objects/dicom/1/2/3.dcm").stat().st_ino == inode
    assert not source.exists()


def test_move_across_file_systems_copies(small_filesystem: Path, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    source = small_filesystem / "x.dcm"
    source.write_bytes(b"d" * 300_000)
    store.put_file("dicom/1/2/3.dcm", source, move=True)
    assert not source.exists()
    assert store.get("dicom/1/2/3.dcm") == b"d" * 300_000
    assert files_under(tmp_path / "objects") == ["dicom/1/2/3.dcm"]


def test_key_that_clashes_with_a_prefix(tmp_path: Path) -> None:
    """A file cannot also be a directory: the local store refuses "a" next to "a/b"."""
    store = LocalObjectStore(tmp_path / "objects")
    store.put("a/b", b"1")
    with pytest.raises(InvalidKey, match="clashes"):
        store.put("a", b"2")
    store.put("c", b"3")
    with pytest.raises(InvalidKey, match="clashes"):
        store.put("c/d", b"4")
    assert [i.key for i in store.list()] == ["a/b", "c"]


def test_temporary_and_foreign_files_are_not_listed(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put("dicom/1/2/3.dcm", b"x")
    crashed = tmp_path / "objects/dicom/1/2/.4.dcm~tmp~999-0"
    crashed.write_bytes(b"half of an object")
    (tmp_path / "objects/dicom/1/2/editor backup #1").write_bytes(b"?")
    assert [i.key for i in store.list()] == ["dicom/1/2/3.dcm"]
    store.put("dicom/1/2/4.dcm", b"whole")
    assert store.get("dicom/1/2/4.dcm") == b"whole"


def test_delete_prunes_directories_other_instances_recreate(tmp_path: Path) -> None:
    writer, deleter = LocalObjectStore(tmp_path / "objects"), LocalObjectStore(tmp_path / "objects")
    writer.put("dicom/1/2/3.dcm", b"x")
    deleter.delete("dicom/1/2/3.dcm")
    assert list((tmp_path / "objects").iterdir()) == []
    writer.put("dicom/1/2/4.dcm", b"y")
    assert [i.key for i in deleter.list()] == ["dicom/1/2/4.dcm"]


def test_without_fsync(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects", fsync=False)
    store.put("k", b"v")
    store.check()
    assert store.get("k") == b"v"


def test_open_store_chooses_the_local_backend(
    openjip_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openjip.config import Settings

    monkeypatch.setenv("OPENJIP_STORAGE__FSYNC", "false")
    store = open_store(Settings())
    assert isinstance(store, LocalObjectStore)
    assert store.root == openjip_home / "objects"
    assert not store.fsync
