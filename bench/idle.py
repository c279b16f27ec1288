"""Memory of an idle local site: ``openjip site up`` (Airflow, receiver, web) against Orthanc
(DICOM and HTTP with its DICOMweb plugin), each started fresh, same run.

Each is started in a fresh home inside a private network namespace (Orthanc and Airflow's
components listen on every interface), left idle for ``--settle`` seconds once it answers, then
its process tree (the started process and every descendant) is sampled ``--samples`` times,
``--interval`` seconds apart: RSS (``VmRSS`` of ``/proc/PID/status``) and PSS (``Pss`` of
``/proc/PID/smaps_rollup``: shared pages divided among the processes sharing them, so the sum
is what the tree really costs) summed over the tree. The figure is the median of the sums; the
processes of the last sample are listed.

Usage: ``.venv/bin/python bench/idle.py [--settle 60]`` (root, for the namespace); figures go
to ``bench/results/idle.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from query import Peer, wait_for_http

from ingest import DCMTK_ENV, IN_NAMESPACE_FLAG, ORTHANC, VENV_BIN, reexec_in_namespace, versions

RESULTS = Path(__file__).resolve().parent / "results" / "idle.json"
RECEIVER_PORT, WEB_PORT, AIRFLOW_PORT, ORTHANC_HTTP, ORTHANC_DICOM = 11112, 8042, 8080, 8043, 4242
GIB_LIMIT_MIB = 1024


def tree(pid: int) -> list[int]:
    """``pid`` and its living descendants."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(text[text.rindex(")") + 2 :].split()[1])
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def memory(pid: int) -> dict[str, Any] | None:
    """RSS and PSS (MiB) and a short command line of one process; ``None`` once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None

    def kib(text: str, field: str) -> float:
        line = next((line for line in text.splitlines() if line.startswith(field + ":")), "")
        return float(line.split()[1]) if line else 0.0

    words = [Path(part.decode()).name if i == 0 else part.decode() for i, part in
             enumerate(command[:4]) if part]  # fmt: skip
    return {"pid": pid, "command": " ".join(words)[:80],
            "rss_mib": round(kib(status, "VmRSS") / 1024, 1),
            "pss_mib": round(kib(rollup, "Pss") / 1024, 1)}  # fmt: skip


def sample(root: int, samples: int, interval: float) -> dict[str, Any]:
    """Median RSS and PSS sums of the tree under ``root``, and its processes (last sample)."""
    sums_rss, sums_pss, processes = [], [], []
    for number in range(samples):
        if number:
            time.sleep(interval)
        processes = [m for m in map(memory, tree(root)) if m is not None]
        sums_rss.append(sum(m["rss_mib"] for m in processes))
        sums_pss.append(sum(m["pss_mib"] for m in processes))
    return {
        "rss_mib": round(statistics.median(sums_rss), 1),
        "pss_mib": round(statistics.median(sums_pss), 1),
        "samples_rss_mib": [round(x, 1) for x in sums_rss],
        "samples_pss_mib": [round(x, 1) for x in sums_pss],
        "processes": sorted(processes, key=lambda m: -m["rss_mib"]),
    }


def idle_openjip(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "OPENJIP_HOME": str(work / "openjip"), "OPENJIP_LOG_LEVEL": "WARNING",
           "OPENJIP_RECEIVER__PORT": str(RECEIVER_PORT), "OPENJIP_WEB__PORT": str(WEB_PORT),
           "OPENJIP_AIRFLOW__PORT": str(AIRFLOW_PORT)}  # fmt: skip
    site = Peer([str(VENV_BIN / "openjip"), "site", "up"], env, work / "site.log")
    try:
        deadline = time.monotonic() + 600
        while "openjip site is running" not in site.log.read_text(errors="replace"):
            if site.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the site did not start:\n{site.log.read_text()[-3000:]}")
            time.sleep(1)
        wait_for_http(WEB_PORT, "/healthz")
        time.sleep(args.settle)
        return sample(site.process.pid, args.samples, args.interval)
    finally:
        site.stop()


def idle_orthanc(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    config = {"Name": "openjip-idle-bench", "StorageDirectory": str(work / "storage"),
              "IndexDirectory": str(work / "index"), "DicomPort": ORTHANC_DICOM,
              "HttpPort": ORTHANC_HTTP, "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False,
              "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
              "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}  # fmt: skip
    (work / "orthanc.json").write_text(json.dumps(config))
    orthanc = Peer([ORTHANC, str(work / "orthanc.json")], DCMTK_ENV, work / "orthanc.log")
    try:
        wait_for_http(ORTHANC_HTTP, "/system")
        time.sleep(args.settle)
        return sample(orthanc.process.pid, args.samples, args.interval)
    finally:
        orthanc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(IN_NAMESPACE_FLAG, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--settle", type=float, default=60.0, help="idle seconds before sampling")
    parser.add_argument("--samples", type=int, default=5, help="samples of the process tree")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args()
    if not args.in_namespace:
        return reexec_in_namespace(__file__)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="openjip-idle-bench-") as tmp:
        work = Path(tmp)
        (work / "orthanc").mkdir()
        report: dict[str, Any] = {
            "benchmark": "memory of an idle site: process tree of `openjip site up` vs Orthanc",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "versions": versions(),
            "method": f"fresh home, idle {args.settle:.0f} s after it answers, then "
            f"{args.samples} samples {args.interval:.0f} s apart of the RSS and PSS sums over "
            "the process tree; median",
            "openjip": idle_openjip(work, args),
            "orthanc": idle_orthanc(work / "orthanc", args),
        }
    report["machine"] = {"cpus": os.cpu_count(), "load_average_before": load_before,
                         "load_average_after": os.getloadavg()}  # fmt: skip
    ours, theirs = report["openjip"], report["orthanc"]
    report["targets"] = {
        "openjip_rss_le_1_gib": ours["rss_mib"] <= GIB_LIMIT_MIB,
        "openjip_over_orthanc_pss": round(ours["pss_mib"] / theirs["pss_mib"], 1),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    for name in ("openjip", "orthanc"):
        print(f"{name}: {report[name]['rss_mib']} MiB RSS, {report[name]['pss_mib']} MiB PSS")
        for process in report[name]["processes"]:
            print(f"  {process['rss_mib']:7.1f} {process['pss_mib']:7.1f}  {process['command']}")
    print(json.dumps(report["targets"]))
    print(f"\nwritten to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
