"""The federation service's gate under attack (issue 15): a 100 MB chunked upload is refused
while it is read, with the server's memory flat; a flood of 1,000 unsigned requests leaves the
audit log with one summary entry and the metrics with a bounded set of series."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from openjip.config.settings import FederationSettings
from openjip.federation.exchange import Exchange

MIB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _memory_kib(pid: int, field: str) -> int:
    """``VmHWM`` (peak) or ``VmRSS`` of a process, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


@dataclass
class Served:
    """A site whose federation service runs in its own process."""

    url: str
    process: subprocess.Popen[bytes]
    exchange: Exchange

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)


@pytest.fixture
def served_site(tmp_path: Path) -> Iterator[Served]:
    """``openjip federation serve`` in its own process, as the chart's container runs it."""
    home = tmp_path / "site"
    exchange = Exchange(home, FederationSettings())
    exchange.init("gated")
    port = _free_port()
    env = {
        **os.environ,
        "OPENJIP_HOME": str(home),
        "OPENJIP_FEDERATION__PORT": str(port),
        "OPENJIP_FEDERATION__PULL_INTERVAL_SECONDS": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "openjip.cli.main", "federation", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "federation serve did not start"
        time.sleep(0.2)
    served = Served(url, process, exchange)
    yield served
    served.stop()


def _chunks(total: int, size: int = MIB) -> Iterator[bytes]:
    chunk = b"{" + b" " * (size - 1)
    for _ in range(total // size):
        yield chunk


def test_a_100_mb_chunked_post_is_refused_while_read_with_memory_flat(
    served_site: Served,
) -> None:
    url, pid = served_site.url, served_site.process.pid
    httpx.get(f"{url}/healthz")
    before = _memory_kib(pid, "VmHWM")

    status: Any
    try:
        # No Content-Length: the size is known only by reading, which the gate stops at 256 KiB.
        status = httpx.post(f"{url}/v1/bundles", content=_chunks(100 * MIB), timeout=60).status_code
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError) as error:
        status = type(error).__name__  # the server closed the connection after its 413

    peak_growth_mib = (_memory_kib(pid, "VmHWM") - before) / 1024
    assert peak_growth_mib < 20, f"server peak memory grew by {peak_growth_mib:.0f} MiB"
    metrics = httpx.get(f"{url}/metrics").text
    assert 'openjip_federation_refused_total{reason="oversized"} 1.0' in metrics, status
    assert status in (413, "WriteError", "RemoteProtocolError", "ReadError")


def test_a_flood_of_unsigned_requests_leaves_audit_and_metrics_bounded(
    served_site: Served,
) -> None:
    url, exchange = served_site.url, served_site.exchange
    lines_before = exchange.audit.path.read_text().count("\n")
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=url, timeout=10) as client:
        for number in range(1000):
            # Every request a new path: raw paths as metric labels would be 1,000 series.
            path = f"/v1/bundles/probe-{number}" if number % 2 else f"/probe/{number}"
            code = client.get(path).status_code
            statuses[code] = statuses.get(code, 0) + 1
        metrics = client.get("/metrics").text

    # The first refusals of this address are answered 401, the rest 429 without being read.
    assert statuses == {401: 100, 429: 900}, statuses
    series = [line for line in metrics.splitlines() if line.startswith("openjip_federation_")]
    requests = [line for line in series if line.startswith("openjip_federation_requests_total")]
    assert 'route="unmatched"' in metrics and 'route="/v1/bundles/{workflow_id}"' in metrics
    assert len(requests) <= 6, requests
    assert "probe" not in metrics
    # Nothing was fsynced per request; the summary is written once per interval (or at stop).
    assert exchange.audit.path.read_text().count("\n") == lines_before
    served_site.stop()
    entries = list(exchange.audit.entries())
    assert len(entries) == lines_before + 1
    summary = entries[-1]
    assert summary["event"] == "requests-refused"
    assert summary["details"]["total"] == 1000
    assert summary["details"]["by_reason"] == {"rate-limited": 900, "unsigned": 100}
    assert exchange.audit.verify_chain() == []
