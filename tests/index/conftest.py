"""Fixtures of the MetadataIndex tests: the backends the contract suite runs against, and a
builder of instance records.

Adding a backend is one line in ``BACKENDS``: a function from a scratch folder to a
:class:`Backend` that opens handles on one fresh index.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from openjip.config.settings import IndexSettings
from openjip.index import InstanceRecord, MetadataIndex
from openjip.index.opensearch import OpenSearchIndex
from openjip.index.sqlite import SQLiteIndex

WORKER = Path(__file__).with_name("index_worker.py")


@dataclass
class Backend:
    """One fresh index of a backend."""

    name: str
    open: Callable[[], MetadataIndex]
    """A new handle on the same index (as another thread or service would open it)."""
    env: dict[str, str] | None
    """Environment that makes ``open_index(Settings())`` open the same index in another
    process; ``None`` when the backend cannot be shared between processes in tests."""


def sqlite_backend(tmp: Path) -> Backend:
    path = tmp / "index.sqlite3"
    env = {"OPENJIP_INDEX__BACKEND": "sqlite", "OPENJIP_INDEX__PATH": str(path)}
    return Backend("sqlite", lambda: SQLiteIndex(path), env)


def opensearch_backend(tmp: Path) -> Backend:
    """Fresh indices (a random prefix) on the cluster ``OPENJIP_TEST_OPENSEARCH_URL`` names;
    writes refresh at once so that the contract's read-after-write holds. None can run on the
    build machine; point this at a disposable cluster (the indices are left behind)."""
    url = os.environ["OPENJIP_TEST_OPENSEARCH_URL"]
    prefix = f"openjip-test-{os.urandom(6).hex()}"
    settings = IndexSettings(
        backend="opensearch",
        opensearch_url=url,
        opensearch_index_prefix=prefix,
        opensearch_refresh="true",
    )
    env = {
        "OPENJIP_INDEX__BACKEND": "opensearch",
        "OPENJIP_INDEX__OPENSEARCH_URL": url,
        "OPENJIP_INDEX__OPENSEARCH_INDEX_PREFIX": prefix,
        "OPENJIP_INDEX__OPENSEARCH_REFRESH": "true",
    }
    return Backend("opensearch", lambda: OpenSearchIndex.from_settings(settings), env)


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite": sqlite_backend,
}
if os.environ.get("OPENJIP_TEST_OPENSEARCH_URL"):
    BACKENDS["opensearch"] = opensearch_backend


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each backend in turn, on a fresh index."""
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
def index(backend: Backend) -> Iterator[MetadataIndex]:
    """An open handle on the fresh index of ``backend``."""
    handle = backend.open()
    yield handle
    handle.close()


@pytest.fixture
def sqlite_index(tmp_path: Path) -> Iterator[SQLiteIndex]:
    """A fresh SQLite index (for tests of what only SQLite has)."""
    handle = SQLiteIndex(tmp_path / "index.sqlite3")
    yield handle
    handle.close()


MakeInstance = Callable[..., InstanceRecord]


@pytest.fixture
def make_instance() -> MakeInstance:
    """Build an instance record: ``make_instance(sop, series, study, **fields)``; the
    received-at time grows by one second per record unless given."""
    clock = itertools.count(1_700_000_000)

    def make(sop: str, series: str, study: str, **values: Any) -> InstanceRecord:
        values.setdefault("received_at", float(next(clock)))
        values.setdefault("size", 1000)
        values.setdefault("object_key", f"dicom/{study}/{series}/{sop}.dcm")
        return InstanceRecord(
            SOPInstanceUID=sop, SeriesInstanceUID=series, StudyInstanceUID=study, **values
        )

    return make


@pytest.fixture
def run_workers(tmp_path: Path) -> Callable[[Backend, list[list[str]]], list[str]]:
    """Start one ``index_worker.py`` process per argument list at once; return their stdout.

    The workers wait for a shared go-file so that they really run at the same time.
    """

    def run(backend: Backend, commands: list[list[str]]) -> list[str]:
        if backend.env is None:
            pytest.skip(f"{backend.name} cannot be shared between processes in tests")
        go = tmp_path / f"go-{os.urandom(4).hex()}"
        env = {**os.environ, **backend.env, "OPENJIP_HOME": str(tmp_path / "home")}
        procs = [
            subprocess.Popen(
                [sys.executable, str(WORKER), str(go), *command],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for command in commands
        ]
        go.touch()
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            outputs.append(out.strip())
        return outputs

    return run
