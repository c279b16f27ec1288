"""Peers of the query/retrieve tests: dcmtk tools, a network namespace for peers that listen
on every interface (storescp, Orthanc), and a pynetdicom storage SCP on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

sys.path.insert(0, str(Path(__file__).parents[1] / "receiver"))
from receiver_peers import DCMTK, dataset_bytes, dcmtk, free_port

__all__ = ["DCMTK", "dataset_bytes", "dcmtk", "free_port"]


def find(
    port: int, *keys: str, root: str = "-S", out_dir: Path, extra: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], list[Dataset]]:
    """Run dcmtk ``findscu`` with ``-k`` keys; return the run and the response identifiers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("rsp*.dcm"):
        old.unlink()
    args = [root, "-X", "-od", str(out_dir), "-aec", "OPENJIP", *extra]
    for key in keys:
        args += ["-k", key]
    run = dcmtk("findscu", *args, "127.0.0.1", str(port))
    responses = [dcmread(path) for path in sorted(out_dir.glob("rsp*.dcm"))]
    return run, responses


def received_dataset(event: evt.Event) -> bytes:
    """The dataset bytes of a C-STORE request as they came over the wire (in a temp file when
    the receiver running in this process switched pynetdicom to chunked receiving)."""
    if _config.STORE_RECV_CHUNKED_DATASET:
        return dataset_bytes(Path(event.dataset_path).read_bytes())
    return bytes(event.request.DataSet.getvalue())


@dataclass
class StorageSCP:
    """A pynetdicom storage SCP on 127.0.0.1 keeping the dataset bytes of each C-STORE."""

    ae_title: str = "DEST"
    received: dict[str, bytes] = field(default_factory=dict)
    port: int = 0
    _ae: Any = None

    def start(self) -> StorageSCP:
        ae = AE(ae_title=self.ae_title)
        ae.add_supported_context(Verification)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        lock = threading.Lock()

        def on_store(event: evt.Event) -> int:
            with lock:
                self.received[event.request.AffectedSOPInstanceUID] = received_dataset(event)
            return 0x0000

        server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
        )
        self.port = server.server_address[1]
        self._ae = ae
        return self

    def stop(self) -> None:
        self._ae.shutdown()


class NetNamespace:
    """A private network namespace (loopback only) that processes can be started in."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", "ip link set lo up && echo up && exec sleep 3600"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.holder.stdout is not None
        if self.holder.stdout.readline().strip() != "up":
            raise RuntimeError("cannot set up a network namespace (needs root)")
        self.processes: list[subprocess.Popen[Any]] = []

    def command(self, *args: str) -> list[str]:
        """``args`` as a command run inside the namespace."""
        return ["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", *args]

    def run(
        self, *args: str, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace to its end."""
        return subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "TCP_NODELAY": "1", **(env or {})},
        )

    def start(
        self, *args: str, log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[Any]:
        """Start a long-running process inside the namespace (stopped by :meth:`close`)."""
        with log.open("wb") as out:
            process = subprocess.Popen(
                self.command(*args),
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TCP_NODELAY": "1", **(env or {})},
            )
        self.processes.append(process)
        return process

    def wait_for_echo(self, port: int, called_ae: str, *, timeout: float = 60) -> None:
        """Wait until a DICOM peer in the namespace answers C-ECHO on ``port``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(
                str(DCMTK / "echoscu"), "-to", "5", "-aec", called_ae, "127.0.0.1", str(port)
            )
            if run.returncode == 0:
                return
            time.sleep(0.2)
        raise TimeoutError(f"nothing answered C-ECHO on port {port} in the namespace")

    def close(self) -> None:
        """Stop what was started in the namespace, then the namespace itself."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.holder.kill()
        self.holder.wait()
