"""What stands in for the chart's MinIO and runs for its PostgreSQL, started on the host inside
the pod's network namespace (``nsenter -n``), so the pod's containers reach them on 127.0.0.1
as they would reach the chart's Services: SeaweedFS on port 9000 (the chart's MinIO port) with
the chart's generated store credentials, and Debian's PostgreSQL on 5432 running as the
``postgres`` user from a temp folder, with the chart's database, user and generated password."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from podman_engine import wait_until

S3_PORT = 9000
"""The chart's MinIO port, where the pod's containers look for the object store."""


def seaweedfs_ports(pid: int) -> dict[str, int]:
    """SeaweedFS's other ports, different for every pod alive at once (``pid`` is its network
    namespace's process): SeaweedFS names unix sockets in /tmp after its gRPC ports, and /tmp is
    shared by every network namespace, so two stand-ins on the same ports talk to each other's
    master (uploads fail with "volume N not found")."""
    base = 20000 + (pid % 4000) * 10
    names = ("master", "volume", "filer", "master.grpc", "volume.grpc", "filer.grpc", "s3.grpc")
    return {name: base + offset for offset, name in enumerate(names)}


def in_netns(pid: int, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on the host, inside the network namespace of process ``pid``."""
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-n", *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, TCP_NODELAY="1"),
    )


class NetnsServices:
    """The S3 stand-in and PostgreSQL of one pod; :meth:`stop` ends both. Their data is in a
    temp folder removed at the end, or under ``root`` when given: kept, and used again by the
    next pod's services (an upgrade played on the same data)."""

    def __init__(self, pid: int, root: Path | None = None) -> None:
        self.pid = pid
        self.processes: list[subprocess.Popen[bytes]] = []
        self.keep = root is not None
        self.root = root or Path(tempfile.mkdtemp(prefix="openjip-podman-", dir="/var/tmp"))
        self.root.mkdir(exist_ok=True)
        self.root.chmod(0o755)  # PostgreSQL's user must reach its data folder

    def _spawn(self, command: list[str], log: str) -> subprocess.Popen[bytes]:
        with (self.root / log).open("wb") as output:
            process = subprocess.Popen(
                ["nsenter", "-t", str(self.pid), "-n", *command],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        self.processes.append(process)
        return process

    def start_s3(self, access_key: str, secret_key: str) -> None:
        data = self.root / "s3"
        data.mkdir(exist_ok=True)
        identity = {"accessKey": access_key, "secretKey": secret_key}
        actions = ["Admin", "Read", "Write", "List", "Tagging"]
        config = {
            "identities": [{"name": "openjip", "credentials": [identity], "actions": actions}]
        }
        (data / "s3.json").write_text(json.dumps(config))
        ports = seaweedfs_ports(self.pid)
        self._spawn(
            [
                str(Path(sys.executable).with_name("weed")), "server", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", f"-dir={data}", "-master.telemetry=false",
                "-master.volumeSizeLimitMB=64", "-volume.max=0", "-volume.preStopSeconds=0",
                f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
                *(f"-{name.replace('.grpc', '.port.grpc')}={port}" for name, port in ports.items()
                  if name.endswith(".grpc")),
                "-filer", f"-filer.port={ports['filer']}", f"-filer.localSocket={data}/f.sock",
                "-s3", f"-s3.port={S3_PORT}", f"-s3.config={data}/s3.json",
                f"-s3.localSocket={data}/s3.sock", "-s3.port.iceberg=0", "-s3.port.lance=0",
            ],
            "s3.log",
        )  # fmt: skip
        probe = (
            "import io, sys; from minio import Minio; "
            "c = Minio('127.0.0.1:9000', sys.argv[1], sys.argv[2], secure=False); "
            "c.bucket_exists('ready-probe') or c.make_bucket('ready-probe'); "
            "c.put_object('ready-probe', 'probe', io.BytesIO(b'ok'), 2)"
        )
        wait_until(
            lambda: (
                in_netns(self.pid, sys.executable, "-c", probe, access_key, secret_key).returncode
                == 0
            ),
            120,
            "the S3 stand-in",
        )

    def start_postgresql(self, database: str, user: str, password: str) -> None:
        [binaries] = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:]
        data = self.root / "pg"
        as_postgres = ["runuser", "-u", "postgres", "--"]
        existing = (data / "PG_VERSION").exists()
        if not existing:
            data.mkdir()
            shutil.chown(data, "postgres", "postgres")
            subprocess.run(
                [*as_postgres, f"{binaries}/initdb", "-D", str(data), "-U", "postgres",
                 "--auth-local=trust", "--auth-host=scram-sha-256"],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
        self._spawn(
            [*as_postgres, f"{binaries}/postgres", "-D", str(data), "-p", "5432",
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data}"],
            "postgresql.log",
        )  # fmt: skip
        psql = [*as_postgres, f"{binaries}/psql", "-h", str(data), "-U", "postgres", "-v",
                "ON_ERROR_STOP=1"]  # fmt: skip
        wait_until(
            lambda: in_netns(self.pid, *psql, "-c", "select 1").returncode == 0,
            60,
            "PostgreSQL",
        )
        if existing:  # the database and user of an earlier start
            return
        escaped = password.replace("'", "''")
        for statement in (
            f"CREATE ROLE {user} LOGIN PASSWORD '{escaped}'",
            f"CREATE DATABASE {database} OWNER {user}",
        ):
            done = in_netns(self.pid, *psql, "-c", statement)
            assert done.returncode == 0, done.stderr

    def logs(self) -> str:
        """The tails of the S3 stand-in's and PostgreSQL's logs."""
        return "\n".join(
            f"--- {log.name}:\n{log.read_text(errors='replace')[-2000:]}"
            for log in sorted(self.root.glob("*.log"))
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
