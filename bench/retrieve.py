"""WADO-RS whole-object retrieval: ``openjip web`` against Orthanc's DICOMweb plugin, same data,
same run.

One study of two 100-slice 512² CT series (200 instances, ~100 MiB, written once into
``bench/data/retrieve/``) is loaded into openjip (its ingest path) and into Orthanc (REST API);
neither load is timed. Then ``GET /studies/{study}/series/{series}`` and ``GET
/studies/{study}`` (``multipart/related; type="application/dicom"``) are fetched from both over
one kept-alive connection, the body read to its end and its parts counted; the figure is the
median wall time of ``--repeat`` rounds after one warm-up, openjip and Orthanc interleaved
round by round. Everything runs in a private network namespace (Orthanc listens on every
interface).

Usage: ``.venv/bin/python bench/retrieve.py [--repeat 9]``; figures go to
``bench/results/retrieve.json``.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pydicom
from query import Peer, wait_for_http

from ingest import IN_NAMESPACE_FLAG, VENV_BIN, reexec_in_namespace, versions
from openjip.phantom import write_ct_series
from viewer import ORTHANC_HTTP, WEB_PORT, load_openjip, start_orthanc

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data" / "retrieve"
RESULTS = BENCH_DIR / "results" / "retrieve.json"
SLICES, SIZE = 100, 512
ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def study_files() -> list[list[Path]]:
    """The two series of the study, written once."""
    series = [DATA_DIR / f"ct-{number}" for number in (1, 2)]
    if not (DATA_DIR / "complete").exists():
        for number, directory in enumerate(series, 1):  # one study: same patient and seed
            write_ct_series(directory, slices=SLICES, rows=SIZE, columns=SIZE,
                            patient_id="RETRIEVE", series_number=number)  # fmt: skip
        (DATA_DIR / "complete").touch()
    return [sorted(directory.iterdir()) for directory in series]


def fetcher(client: httpx.Client, path: str, parts: int) -> Callable[[], int]:
    """Fetch ``path`` as multipart, read it whole, check it holds ``parts`` parts; its bytes."""

    def fetch() -> int:
        size, boundaries = 0, 0
        with client.stream("GET", path, headers={"Accept": ACCEPT}) as answer:
            answer.raise_for_status()
            boundary = answer.headers["content-type"].split("boundary=")[1].split(";")[0]
            marker = f"--{boundary}\r\nContent-Type".encode()
            tail = b""
            for chunk in answer.iter_raw(1 << 20):
                size += len(chunk)
                window = tail + chunk
                boundaries += window.count(marker) - tail.count(marker)
                tail = window[-len(marker) :]
        if boundaries != parts:
            raise RuntimeError(f"{path}: {boundaries} parts, expected {parts}")
        return size

    return fetch


def run_in_namespace(args: argparse.Namespace) -> dict[str, Any]:
    series_files = study_files()
    first = pydicom.dcmread(series_files[0][0], stop_before_pixels=True)
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    files = [path for paths in series_files for path in paths]
    cases = {
        f"series_{SLICES}x{SIZE}": (f"/studies/{study}/series/{series}", SLICES),
        f"study_{len(files)}x{SIZE}": (f"/studies/{study}", len(files)),
    }
    load_before = os.getloadavg()
    samples: dict[str, dict[str, list[float]]] = {"openjip": {}, "orthanc": {}}
    sizes: dict[str, dict[str, int]] = {"openjip": {}, "orthanc": {}}
    with tempfile.TemporaryDirectory(prefix="openjip-retrieve-bench-") as tmp:
        work = Path(tmp)
        load_openjip(work / "openjip", files)
        env = {**os.environ, "OPENJIP_HOME": str(work / "openjip"),
               "OPENJIP_WEB__PORT": str(WEB_PORT), "OPENJIP_LOG_LEVEL": "warning",
               # Anonymous on loopback (inside the namespace), as Orthanc runs without auth.
               "OPENJIP_ACCESS__ALLOW_ANONYMOUS": "true",
               "OPENJIP_ACCESS__ANONYMOUS_ROLE": "admin"}  # fmt: skip
        web = Peer([str(VENV_BIN / "openjip"), "web"], env, work / "web.log")
        orthanc = start_orthanc(work, files)
        try:
            wait_for_http(WEB_PORT, "/healthz")
            bases = {"openjip": f"http://127.0.0.1:{WEB_PORT}/dicom-web",
                     "orthanc": f"http://127.0.0.1:{ORTHANC_HTTP}/dicom-web"}  # fmt: skip
            clients = {name: httpx.Client(base_url=base, timeout=120) for name, base in
                       bases.items()}  # fmt: skip
            for case, (path, parts) in cases.items():
                fetches = {name: fetcher(client, path, parts) for name, client in clients.items()}
                for name, fetch in fetches.items():
                    sizes[name][case] = fetch()  # warm-up (and the check of the parts)
                for _ in range(args.repeat):
                    for name, fetch in fetches.items():
                        started = time.perf_counter()
                        fetch()
                        elapsed = (time.perf_counter() - started) * 1000
                        samples[name].setdefault(case, []).append(elapsed)
            for client in clients.values():
                client.close()
        finally:
            web.stop()
            orthanc.stop()
    report: dict[str, Any] = {
        "benchmark": "WADO-RS retrieve of whole objects (multipart/related application/dicom)",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "data": {
            "study_instances": len(files),
            "series": f"2 x {SLICES} x {SIZE}² CT",
            "transfer_syntax": "Explicit VR Little Endian",
        },
        "method": "one kept-alive connection per server, body read to its end and its parts "
        f"counted; median of {args.repeat} rounds after a warm-up, servers interleaved",
    }
    for name in ("openjip", "orthanc"):
        report[name] = {
            case: {
                "median_ms": round(statistics.median(values), 1),
                "samples_ms": [round(value, 1) for value in values],
                "bytes": sizes[name][case],
            }
            for case, values in samples[name].items()
        }
    report["openjip_over_orthanc"] = {
        case: round(report["openjip"][case]["median_ms"] / report["orthanc"][case]["median_ms"], 2)
        for case in cases
    }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(IN_NAMESPACE_FLAG, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON file to write")
    parser.add_argument("--repeat", type=int, default=9, help="rounds of each measurement")
    args = parser.parse_args()
    if not args.in_namespace:
        return reexec_in_namespace(__file__)
    report = run_in_namespace(args)
    summary = {key: report[key] for key in ("openjip", "orthanc", "openjip_over_orthanc")}
    print(json.dumps(summary, indent=2))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
