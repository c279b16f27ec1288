"""Fixtures of the command-line tests: folders of real DICOM files, real DICOM peers (a
pynetdicom SCP process, dcmtk storescp in a private network namespace) and a
site whose store and index were filled through the real ingest path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from openjip.config import Settings
from openjip.index import open_index
from openjip.ingest import Ingestor
from openjip.storage import open_store

SAMPLE_FILES = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm", "rtplan.dcm"]
"""pydicom test files of four modalities and four transfer syntaxes (one study shared)."""


def sample_path(name: str) -> Path:
    """The path of one of pydicom's bundled test files."""
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(str(path))


@pytest.fixture
def openjip_script() -> Path:
    """The installed ``openjip`` console script."""
    return Path(sys.executable).with_name("openjip")


@pytest.fixture
def dicom_folder(tmp_path: Path) -> Path:
    """A folder tree with the sample DICOM files (one in a subfolder) and a non-DICOM note."""
    folder = tmp_path / "scans"
    (folder / "more").mkdir(parents=True)
    for name in SAMPLE_FILES[:-1]:
        shutil.copy(sample_path(name), folder / name)
    shutil.copy(sample_path(SAMPLE_FILES[-1]), folder / "more" / SAMPLE_FILES[-1])
    (folder / "README.txt").write_text("not DICOM\n")
    return folder


@dataclass
class StoreSCP:
    """A running pynetdicom storage SCP process (``pynetdicom_scp.py``) and what it got."""

    port: int
    out: Path

    @property
    def received(self) -> dict[str, bytes]:
        """SOPInstanceUID -> the encoded dataset as it arrived."""
        return {p.name: p.read_bytes() for p in self.out.iterdir() if p.name != "associations"}

    @property
    def associations(self) -> list[int]:
        """The number of proposed presentation contexts of each established association."""
        log = self.out / "associations"
        return [int(line) for line in log.read_text().splitlines()] if log.exists() else []


StartStoreSCP = Callable[..., StoreSCP]


@pytest.fixture
def start_store_scp(tmp_path: Path) -> Iterator[StartStoreSCP]:
    """Start a storage SCP in its own process; ``fail`` maps SOPInstanceUIDs to the status
    it answers for them instead of success."""
    processes: list[subprocess.Popen[str]] = []

    def start(fail: dict[str, int] | None = None) -> StoreSCP:
        out = tmp_path / f"scp{len(processes)}"
        out.mkdir()
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("pynetdicom_scp.py")), str(out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "SCP_FAIL": json.dumps(fail or {})},
        )
        processes.append(process)
        assert process.stdout is not None
        return StoreSCP(int(process.stdout.readline()), out)

    yield start
    for process in processes:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


RunInNetns = Callable[[str, str], subprocess.CompletedProcess[str]]


@pytest.fixture
def with_storescp(tmp_path: Path) -> RunInNetns:
    """Run ``command`` (a shell line) next to dcmtk ``storescp ARGS`` listening on port 11112,
    both inside a private network namespace (storescp binds every interface)."""

    def run(storescp_args: str, command: str) -> subprocess.CompletedProcess[str]:
        script = f"""
            ip link set lo up
            /usr/bin/storescp {storescp_args} 11112 &
            scp=$!
            for _ in $(seq 200); do
                ss -Hltn 'sport = :11112' | grep -q LISTEN && break
                sleep 0.05
            done
            {command}
            status=$?
            kill $scp
            wait $scp
            exit $status
        """
        env = {**os.environ, "TCP_NODELAY": "1", "COLUMNS": "200"}
        return subprocess.run(
            ["unshare", "-n", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
            check=False,
        )

    return run


@pytest.fixture
def filled_site(settings: Settings) -> Settings:
    """``settings``' site with every sample file ingested through the real ingest path."""
    index = open_index(settings)
    try:
        ingestor = Ingestor(open_store(settings), index)
        for name in SAMPLE_FILES:
            ingestor.ingest_file(sample_path(name), source_ae="TEST")
    finally:
        index.close()
    return settings


ServiceEnv = Callable[..., dict[str, str]]


@pytest.fixture
def service_env(openjip_home: Path) -> ServiceEnv:
    """The environment of an openjip subprocess of this test's site: free ports, TCP_NODELAY
    for dcmtk, wide output; keyword arguments add or override ``OPENJIP_`` settings."""

    def env(**settings: str) -> dict[str, str]:
        return {
            **os.environ,
            "OPENJIP_HOME": str(openjip_home),
            "OPENJIP_RECEIVER__PORT": "0",
            "OPENJIP_WEB__PORT": "0",
            # Airflow has its own tests (tests/airflow); here it would only add a minute.
            "OPENJIP_AIRFLOW__ENABLED": "false",
            "TCP_NODELAY": "1",
            "COLUMNS": "200",
            **settings,
        }

    return env


Endpoints = dict[str, str]
StartService = Callable[..., tuple["subprocess.Popen[str]", Endpoints]]


@pytest.fixture
def start_service(openjip_script: Path, service_env: ServiceEnv) -> Iterator[StartService]:
    """Start ``openjip ARGS...`` (a foreground service) and read the endpoints it prints
    (``dicom_host``, ``dicom_port``, ``ae``, ``web``, and ``admin_user``/``admin_password``
    when ``site up`` created the first admin) until those in ``expect`` are known;
    every process still running at teardown is killed."""
    processes: list[subprocess.Popen[str]] = []

    def start(
        args: list[str], expect: set[str], **settings: str
    ) -> tuple[subprocess.Popen[str], Endpoints]:
        process = subprocess.Popen(
            [str(openjip_script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=service_env(**settings),
        )
        processes.append(process)
        assert process.stdout is not None
        printed: Endpoints = {}
        for line in process.stdout:
            if match := re.match(r"\s+DICOM\s+(\S+):(\d+)\s+AE (\S+)", line):
                printed.update(dicom_host=match[1], dicom_port=match[2], ae=match[3])
            if match := re.match(r"\s+web\s+(http://\S+)/healthz", line):
                printed["web"] = match[1]
            if match := re.match(r"first admin created: user (\S+)  password (\S+)", line):
                printed.update(admin_user=match[1], admin_password=match[2])
            if expect <= printed.keys():
                return process, printed
        raise AssertionError(f"openjip {' '.join(args)} ended: {process.stderr.read()}")  # type: ignore[union-attr]

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
