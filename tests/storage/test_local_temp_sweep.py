"""Temporary files that a kill -9 during ``put`` leaves in the local store: never listed, left
alone while young (a write in progress), removed once older than the setting, by the next write
into their directory or by a whole-store sweep (``openjip index rebuild``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openjip.cli.main import app
from openjip.storage.local import LocalObjectStore

SERIES = "dicom/1.2/3.4"

# Stores one object whose bytes come from stdin: it blocks in put() once the temporary file
# exists, printing "writing" so that the test can kill it there.
_KILLED_WRITER = """
import sys
from pathlib import Path
from openjip.storage.local import LocalObjectStore

class Stalling:
    def __init__(self):
        self.first = True
    def read(self, size):
        if self.first:
            self.first = False
            return b"x" * 1000
        print("writing", flush=True)
        return sys.stdin.buffer.read(size)

LocalObjectStore(Path(sys.argv[1])).put(sys.argv[2], Stalling())
"""


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and "~tmp~" in p.name)


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture
def killed_put(tmp_path: Path) -> Path:
    """A store in which a process was killed with SIGKILL during put(); its root."""
    root = tmp_path / "objects"
    LocalObjectStore(root).put(f"{SERIES}/5.6.dcm", b"kept")
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(root), f"{SERIES}/5.7.dcm"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert writer.stdout is not None and writer.stdout.readline() == b"writing\n"
    writer.kill()
    writer.wait(timeout=60)
    (left,) = temp_files(root)
    assert left.parent == root / SERIES and left.name.startswith(".5.7.dcm~tmp~")
    return root


def test_young_leftovers_stay_and_old_ones_are_swept(killed_put: Path) -> None:
    store = LocalObjectStore(killed_put, temp_max_age_seconds=3600)
    assert [o.key for o in store.list()] == [f"{SERIES}/5.6.dcm"]
    (left,) = temp_files(killed_put)

    assert store.sweep_temporary_files() == 0  # as young as a write in progress
    assert temp_files(killed_put) == [left]

    age(left, 3601)
    assert store.sweep_temporary_files() == 1
    assert temp_files(killed_put) == []
    assert store.get(f"{SERIES}/5.6.dcm") == b"kept"


def test_the_next_write_into_the_directory_sweeps_it(killed_put: Path) -> None:
    (left,) = temp_files(killed_put)
    age(left, 120)
    LocalObjectStore(killed_put, temp_max_age_seconds=3600).put(f"{SERIES}/5.8.dcm", b"new")
    assert temp_files(killed_put) == [left], "younger than the setting: kept"

    LocalObjectStore(killed_put, temp_max_age_seconds=60).put(f"{SERIES}/5.7.dcm", b"again")
    assert temp_files(killed_put) == []
    store = LocalObjectStore(killed_put)
    assert [o.key for o in store.list()] == [f"{SERIES}/{n}.dcm" for n in ("5.6", "5.7", "5.8")]


def test_index_rebuild_sweeps_the_store(
    killed_put: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (left,) = temp_files(killed_put)
    age(left, 7200)
    monkeypatch.setenv("OPENJIP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPENJIP_STORAGE__PATH", str(killed_put))
    result = CliRunner().invoke(app, ["index", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "removed 1 temporary files of unfinished writes" in result.output
    assert temp_files(killed_put) == []
