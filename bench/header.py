"""Header micro-benchmark: what openjip's fast header reader saves per instance over pydicom.

Both readers turn the same bytes into the same DICOM JSON header (bulk data left out; the parity
test in ``tests/dicom/test_header_parity.py`` holds them to that):

* ``fast``: ``openjip.dicom.fastheader.parse_part10`` — what ``read_instance`` does first;
* ``pydicom``: ``dcmread(stop_before_pixels=True)`` then ``openjip.dicom.dicom_json_header`` —
  what ``read_instance`` falls back to for encodings the fast path leaves alone.

Two sets of files: the phantom CT instances ``openjip phantom`` writes (512 x 512, explicit VR
little endian, the receiver's everyday input) and every file of pydicom's test data and
pydicom-data that the fast path reads (many modalities, vendors, sequences). Each file is read
from memory (no disk I/O in either figure), ``--repeat`` times by each reader in turn; a file's
figure is its fastest read by that reader (the least disturbed by other load on the machine),
and a set's figure the median over its files. CPU seconds (``time.process_time``) are given too.

Usage: ``.venv/bin/python bench/header.py [--repeat 30] [--slices 20]``; figures go to
``bench/results/header.json``.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
from pydicom import dcmread

from openjip.dicom import dicom_json_header
from openjip.dicom.fastheader import FastPathUnsupported, MalformedInstance, parse_part10
from openjip.phantom import write_ct_series

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "dicom"))

from dicom_corpus import corpus_files  # noqa: E402

Reader = Callable[[bytes], dict[str, Any]]


def _fast(data: bytes) -> dict[str, Any]:
    return parse_part10(data).header


def _pydicom(data: bytes) -> dict[str, Any]:
    return dicom_json_header(dcmread(io.BytesIO(data), stop_before_pixels=True))


READERS: dict[str, Reader] = {"fast": _fast, "pydicom": _pydicom}


def _fast_path_reads(data: bytes) -> bool:
    try:
        parse_part10(data)
    except (FastPathUnsupported, MalformedInstance):
        return False
    return True


def _time_file(data: bytes, repeat: int) -> dict[str, dict[str, float]]:
    """Fastest wall and CPU time of each reader over ``repeat`` interleaved reads."""
    best = {name: {"wall": float("inf"), "cpu": float("inf")} for name in READERS}
    for _ in range(repeat):
        for name, reader in READERS.items():
            wall, cpu = time.perf_counter(), time.process_time()
            reader(data)
            best[name]["wall"] = min(best[name]["wall"], time.perf_counter() - wall)
            best[name]["cpu"] = min(best[name]["cpu"], time.process_time() - cpu)
    return best


def _summary(files: dict[str, bytes], repeat: int) -> dict[str, Any]:
    timings = {name: _time_file(data, repeat) for name, data in files.items()}
    result: dict[str, Any] = {"files": len(files)}
    for name in READERS:
        result[f"{name}_us_per_instance"] = round(
            statistics.median(t[name]["wall"] for t in timings.values()) * 1e6, 1
        )
        result[f"{name}_cpu_us_per_instance"] = round(
            statistics.median(t[name]["cpu"] for t in timings.values()) * 1e6, 1
        )
    ratios = [t["pydicom"]["wall"] / t["fast"]["wall"] for t in timings.values()]
    result["saved_us_per_instance"] = round(
        result["pydicom_us_per_instance"] - result["fast_us_per_instance"], 1
    )
    result["pydicom_over_fast"] = {
        "median": round(statistics.median(ratios), 2),
        "min": round(min(ratios), 2),
        "max": round(max(ratios), 2),
    }
    result["header_elements_median"] = statistics.median(
        len(_fast(data)) for data in files.values()
    )
    return result


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=BENCH_DIR,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.stdout.strip()


def main() -> int:
    logging.disable(logging.WARNING)  # a test file's bad IS value is logged on every read
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30, help="reads per file and reader")
    parser.add_argument("--slices", type=int, default=20, help="phantom CT instances")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results" / "header.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        phantom = {
            path.name: path.read_bytes() for path in write_ct_series(folder, slices=args.slices)
        }
    corpus = {path.name: path.read_bytes() for path in corpus_files()}
    readable = {name: data for name, data in corpus.items() if _fast_path_reads(data)}
    load_before = os.getloadavg()
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": {
            "openjip_commit": _commit(),
            "pydicom": pydicom.__version__,
            "python": platform.python_version(),
        },
        "machine": {"cpus": os.cpu_count(), "load_average_before": list(load_before)},
        "method": {
            "repeat": args.repeat,
            "figure": "per file the fastest of --repeat reads from memory, per set the median "
            "over its files; cpu_us from time.process_time",
            "fast": "openjip.dicom.fastheader.parse_part10(data).header",
            "pydicom": "dicom_json_header(dcmread(BytesIO(data), stop_before_pixels=True))",
        },
        "phantom_ct": _summary(phantom, args.repeat),
        "pydicom_test_files": {
            **_summary(readable, args.repeat),
            "files_in_corpus": len(corpus),
            "files_left_to_pydicom_or_refused": len(corpus) - len(readable),
        },
    }
    report["machine"]["load_average_after"] = list(os.getloadavg())
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("phantom_ct", "pydicom_test_files")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
