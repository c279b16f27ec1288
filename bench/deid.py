"""De-identification speed: openjip's Basic Profile against Orthanc's ``/instances/{id}/anonymize``
(Basic Profile, Orthanc's default) on the same 1,000 phantom CT instances.

openjip: ``deidentify_files`` (read, walk, write, leak check) one instance at a time, and
four at a time (threads: reading and writing overlap the walk).
Orthanc: the instances uploaded first (not timed; it reads every file, so openjip's inputs are
in the page cache too), then one ``POST /instances/{id}/anonymize`` per instance, each answer
(the anonymized file) written to disk, over one keep-alive HTTP connection.
Three rounds, each openjip (one worker), Orthanc, openjip (four workers), so that the load of
the shared machine falls on all of them, each after a sync (no dirty pages of the run before
left to write back); the medians and the load average after each round are written, and the
CPU time per instance (openjip's process; Orthanc's process plus this client writing its
answers), which the shared machine's load does not change as much as the wall time. Orthanc
listens on every interface, so the run happens in a private network namespace (``unshare -n``,
root), with TCP_NODELAY=1 (shared/TOOLING.md).
Writes bench/results/deid.json.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from query import Peer, wait_for_http

from ingest import DCMTK_ENV, LOOPBACK_UP, ORTHANC, versions
from openjip.deid.profile import build_profile
from openjip.deid.pseudonyms import Pseudonyms
from openjip.deid.run import deidentify_files
from openjip.deid.walker import Deidentifier
from openjip.phantom.ct import write_ct_series

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data" / "deid-ct"
RESULTS = BENCH_DIR / "results" / "deid.json"
SERIES, SLICES, SIZE = 10, 100, 512
ORTHANC_HTTP = 18042
IN_NAMESPACE_FLAG = "--in-namespace"
ROUNDS = 3


def data_files() -> list[Path]:
    files = sorted(DATA_DIR.rglob("*.dcm"))
    if len(files) == SERIES * SLICES:
        return files
    for series in range(SERIES):
        write_ct_series(DATA_DIR / f"s{series}", slices=SLICES, rows=SIZE, columns=SIZE,
                        patient_id=f"BENCH{series % 3}", series_number=series + 1)  # fmt: skip
    return sorted(DATA_DIR.rglob("*.dcm"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_openjip(files: list[Path], out: Path, workers: int) -> tuple[float, float]:
    """Seconds and CPU seconds to de-identify ``files`` into the new folder ``out``."""
    deidentifier = Deidentifier(build_profile(), Pseudonyms(b"bench-secret"))
    started, cpu = time.perf_counter(), time.process_time()
    report = deidentify_files(files, out, deidentifier, workers=workers)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert report.instances == len(files) and report.check_passed, report.to_json()["check"]
    return seconds, cpu


def _post(conn: http.client.HTTPConnection, path: str, body: bytes) -> bytes:
    conn.request("POST", path, body=body, headers={"Content-Length": str(len(body))})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"Orthanc {path}: {response.status} {data[:300]!r}")
    return data


def start_orthanc(files: list[Path], work: Path) -> tuple[Peer, list[str]]:
    """Orthanc with ``files`` uploaded (not timed); the peer and the instances' ids."""
    config = {
        "Name": "openjip-deid-bench",
        "StorageDirectory": str(work / "storage"),
        "IndexDirectory": str(work / "index"),
        "HttpPort": ORTHANC_HTTP,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [],
    }
    (work / "orthanc.json").write_text(json.dumps(config))
    peer = Peer([ORTHANC, str(work / "orthanc.json")], DCMTK_ENV, work / "orthanc.log")
    wait_for_http(ORTHANC_HTTP, "/system")
    conn = http.client.HTTPConnection("127.0.0.1", ORTHANC_HTTP, timeout=120)
    ids = [json.loads(_post(conn, "/instances", path.read_bytes()))["ID"] for path in files]
    conn.close()
    return peer, ids


def time_orthanc(peer: Peer, ids: list[str], out: Path) -> tuple[float, float]:
    """Seconds and CPU seconds (Orthanc's and this client's, which writes the answers) to
    anonymize every instance, each answer written to the new folder ``out``."""
    out.mkdir()
    conn = http.client.HTTPConnection("127.0.0.1", ORTHANC_HTTP, timeout=120)
    started, cpu = time.perf_counter(), time.process_time() + cpu_seconds(peer.process.pid)
    for number, instance in enumerate(ids):
        data = _post(conn, f"/instances/{instance}/anonymize", b"{}")
        (out / f"{number}.dcm").write_bytes(data)
    seconds = time.perf_counter() - started
    cpu = time.process_time() + cpu_seconds(peer.process.pid) - cpu
    conn.close()
    return seconds, cpu


def _figures(files: list[Path], runs: list[tuple[float, float]]) -> dict[str, Any]:
    rates = [round(len(files) / seconds, 1) for seconds, _ in runs]
    cpu = [round(1000 * cpu / len(files), 2) for _, cpu in runs]
    return {
        "instances_per_second": rates,
        "median": statistics.median(rates),
        "cpu_ms_per_instance": cpu,
        "median_cpu_ms_per_instance": statistics.median(cpu),
    }


def main() -> int:
    if IN_NAMESPACE_FLAG not in sys.argv:
        if os.geteuid() != 0:
            sys.exit("the benchmark needs root for its private network namespace (unshare -n)")
        data_files()  # generated outside, so the namespace run only measures
        command = [sys.executable, __file__, IN_NAMESPACE_FLAG]
        os.execvp("unshare", ["unshare", "-n", "sh", "-c", LOOPBACK_UP, "sh", *command])
    files = data_files()
    load = [os.getloadavg()[0]]
    timings: dict[str, list[tuple[float, float]]] = {"one": [], "four": [], "orthanc": []}
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        peer, ids = start_orthanc(files, work)  # reads every file: openjip's are warm too
        try:
            for round_ in range(ROUNDS):  # alternating, so a change of load hits all three
                # Each run starts with no dirty pages of the one before left to write back.
                os.sync()
                timings["one"].append(time_openjip(files, work / f"one-{round_}", workers=1))
                os.sync()
                timings["orthanc"].append(time_orthanc(peer, ids, work / f"orthanc-{round_}"))
                os.sync()
                timings["four"].append(time_openjip(files, work / f"four-{round_}", workers=4))
                load.append(os.getloadavg()[0])
                for name in ("one", "orthanc", "four"):  # keep the disk's page cache for inputs
                    shutil.rmtree(work / f"{name}-{round_}")
        finally:
            peer.stop()
    one, four, orthanc = (_figures(files, timings[k]) for k in ("one", "four", "orthanc"))
    note = "deidentify_files: read, walk, write, leak check"
    result = {
        "what": f"{len(files)} phantom CT instances {SIZE}x{SIZE}, Basic Profile, "
        f"{ROUNDS} alternating rounds (openjip one worker, Orthanc, openjip four workers)",
        "openjip_one_worker": {**one, "note": note + ", one instance at a time"},
        "openjip_four_workers": {**four, "note": note + ", four threads (disk I/O overlaps)"},
        "orthanc": {
            **orthanc,
            "note": "POST /instances/{id}/anonymize over one keep-alive connection, one request "
            "at a time, answer written to disk",
        },
        "ratio_one_worker_to_orthanc": round(one["median"] / orthanc["median"], 2),
        "ratio_four_workers_to_orthanc": round(four["median"] / orthanc["median"], 2),
        "cpu_ratio_orthanc_to_openjip_one_worker": round(
            orthanc["median_cpu_ms_per_instance"] / one["median_cpu_ms_per_instance"], 2
        ),
        "load_average_1min": [round(value, 1) for value in load],
        "versions": versions(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
