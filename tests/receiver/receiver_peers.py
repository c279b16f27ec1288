"""Peers and helpers of the receiver tests: dcmtk tools by absolute path, a pynetdicom SCU,
the byte ranges of Part-10 files, and a look into a receiver's store and index."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pynetdicom import AE
from pynetdicom.association import Association

from openjip.index import InstanceRecord, Query
from openjip.index.sqlite import SQLiteIndex
from openjip.storage.local import LocalObjectStore

DCMTK = Path("/usr/bin")


def dcmtk(tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a dcmtk tool (never pynetdicom's same-named apps) with TCP_NODELAY=1."""
    return subprocess.run(
        [str(DCMTK / tool), *args],
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dataset_offset(data: bytes) -> int:
    """Where the dataset starts in a Part-10 file (after preamble, prefix and file meta)."""
    assert data[128:132] == b"DICM"
    pos = 132
    while struct.unpack_from("<H", data, pos)[0] == 0x0002:
        vr = data[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            pos += 12 + struct.unpack_from("<L", data, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", data, pos + 6)[0]
    return pos


def dataset_bytes(data: bytes) -> bytes:
    """The dataset of a Part-10 file, as encoded."""
    return data[dataset_offset(data) :]


@contextmanager
def scu(
    address: tuple[str, int],
    contexts: list[tuple[str, list[str]]],
    *,
    calling_ae: str = "TESTSCU",
    called_ae: str = "OPENJIP",
) -> Iterator[Association]:
    """An established pynetdicom association proposing ``(sop_class, [syntaxes])`` contexts."""
    ae = AE(ae_title=calling_ae)
    # Generous: the shared 2-core test machine can stall a response for many seconds.
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
    for sop_class, syntaxes in contexts:
        ae.add_requested_context(sop_class, syntaxes)
    assoc = ae.associate(address[0], address[1], ae_title=called_ae)
    assert assoc.is_established, "association was not accepted"
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def stored_objects(settings: Any) -> list[str]:
    """Keys of the DICOM objects in a receiver's local store."""
    return [info.key for info in LocalObjectStore(settings.storage_path).list("dicom/")]


def indexed_instances(settings: Any) -> list[InstanceRecord]:
    """Every instance in a receiver's SQLite index."""
    index = SQLiteIndex(settings.index_path)
    try:
        return index.find_instances(Query())
    finally:
        index.close()


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_echo(port: int, *, timeout: float = 60) -> None:
    """Wait until a receiver on ``port`` answers C-ECHO."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dcmtk("echoscu", "-to", "5", "-aec", "OPENJIP", "127.0.0.1", str(port)).returncode == 0:
            return
        time.sleep(0.2)
    raise TimeoutError(f"no receiver answered C-ECHO on port {port}")


def storescu_successes(log: str) -> list[str]:
    """Files a ``storescu -v`` run reported as stored with status Success."""
    current = ""
    stored = []
    for line in log.splitlines():
        if "Sending file:" in line:
            current = line.split("Sending file:", 1)[1].strip()
        elif "Received Store Response (Success)" in line and current:
            stored.append(current)
            current = ""
    return stored
