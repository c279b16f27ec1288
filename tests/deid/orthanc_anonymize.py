"""Orthanc as the reference de-identifier: ``python orthanc_anonymize.py OUT FILE...`` starts
Orthanc, uploads each file, and writes its ``POST /instances/{id}/anonymize`` answer (Orthanc's
Basic Profile, its default) to ``OUT/<position>.dcm``. Orthanc listens on every interface: run
this inside a private network namespace (``unshare -n``), as tests/deid does."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ORTHANC = "/usr/sbin/Orthanc"


def _request(port: int, method: str, path: str, body: bytes = b"") -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request(method, path, body=body, headers={"Content-Length": str(len(body))})
    response = connection.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"Orthanc {method} {path}: {response.status} {data[:300]!r}")
    return data


def _wait(port: int, orthanc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if orthanc.poll() is not None:
            raise RuntimeError(f"Orthanc exited:\n{log.read_text()[-2000:]}")
        try:
            _request(port, "GET", "/system")
            return
        except (OSError, RuntimeError):
            time.sleep(0.2)
    raise RuntimeError("Orthanc did not answer")


def main(out: Path, files: list[Path], port: int = 8042) -> None:
    with tempfile.TemporaryDirectory() as work:
        config = {
            "Name": "openjip-deid-reference",
            "StorageDirectory": f"{work}/storage",
            "IndexDirectory": f"{work}/storage",
            "HttpPort": port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [],
        }
        Path(work, "orthanc.json").write_text(json.dumps(config))
        log = Path(work, "orthanc.log")
        with log.open("wb") as handle:
            orthanc = subprocess.Popen(
                [ORTHANC, f"{work}/orthanc.json"],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TCP_NODELAY": "1"},
            )
        try:
            _wait(port, orthanc, log)
            out.mkdir(parents=True, exist_ok=True)
            for position, path in enumerate(files):
                try:
                    uploaded = json.loads(_request(port, "POST", "/instances", path.read_bytes()))
                except RuntimeError as refused:  # the test names the files Orthanc refuses
                    print(f"{path.name}: {refused}", file=sys.stderr)
                    continue
                answer = _request(port, "POST", f"/instances/{uploaded['ID']}/anonymize", b"{}")
                (out / f"{position}.dcm").write_bytes(answer)
        finally:
            orthanc.terminate()
            orthanc.wait(timeout=30)


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(arg) for arg in sys.argv[2:]])
