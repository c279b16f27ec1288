"""Start-up time of the console script: ``openjip --help`` and ``openjip query studies``.

Each command runs ``--runs`` times (default 10) in a fresh process, after one unmeasured run
that warms the page cache; ``python -c pass`` runs the same way as the floor any Python command
pays. Reported per command: p50 and minimum of the wall time and of the CPU time (user + system
of the child, far less sensitive to the machine's load than wall time), and the load average.
``query studies`` runs against a SQLite index of ``--studies`` studies (one CT series each) in a
scratch ``OPENJIP_HOME``.

Two modes: ``bytecode`` as an installed openjip starts (pip compiles modules at install; here the
warm-up run writes them under a scratch ``PYTHONPYCACHEPREFIX``), and ``source`` with
``PYTHONDONTWRITEBYTECODE=1`` and no bytecode, as in a development venv made by ``uv pip`` with
that variable set, where every start compiles every module it imports.

On a shared machine the wall time mostly measures the other processes; ``--realtime`` (root)
runs each measured process under ``chrt -r 1`` (round-robin real-time priority 1, so it waits
for no ordinary process: close to an idle machine's figure), which the figures record.

Usage: ``.venv/bin/python bench/cli.py [--runs 10] [--studies 100] [--realtime]``.
Figures go to ``bench/results/cli.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from openjip.index.sqlite import SQLiteIndex
from openjip.records import InstanceRecord

RESULTS = Path(__file__).with_name("results") / "cli.json"
OPENJIP = Path(sys.executable).with_name("openjip")


def measure(
    command: list[str], runs: int, env: dict[str, str], prefix: list[str]
) -> dict[str, Any]:
    """Wall and CPU milliseconds of ``runs`` runs of ``command`` (after one warm-up run), each
    started through ``prefix`` (e.g. ``chrt -r 1``)."""
    subprocess.run(command, env=env, capture_output=True, check=True)
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([*prefix, *command], env=env, capture_output=True, check=True)
        walls.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        cpus.append(used * 1000)
    return {
        "command": " ".join(Path(command[0]).name if i == 0 else a for i, a in enumerate(command)),
        "wall_ms_p50": round(statistics.median(walls), 1),
        "wall_ms_min": round(min(walls), 1),
        "cpu_ms_p50": round(statistics.median(cpus), 1),
        "cpu_ms_min": round(min(cpus), 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def fill_index(home: Path, studies: int) -> None:
    index = SQLiteIndex(home / "index.sqlite3")
    index.upsert_instances(
        [
            InstanceRecord(
                f"1.2.3.{n}.1.1",
                f"1.2.3.{n}.1",
                f"1.2.3.{n}",
                PatientID=f"P{n:04d}",
                PatientName=f"PATIENT^{n:04d}",
                StudyDate=f"2024{n % 12 + 1:02d}01",
                Modality="CT",
                size=1000,
                received_at=time.time(),
            )
            for n in range(studies)
        ]
    )
    index.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--realtime", action="store_true", help="run each measured process under chrt -r 1"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        fill_index(home, args.studies)
        prefix = ["chrt", "-r", "1"] if args.realtime else []
        base = {**os.environ, "OPENJIP_HOME": str(home), "COLUMNS": "120"}
        base.pop("PYTHONDONTWRITEBYTECODE", None)
        modes = {
            "bytecode": {**base, "PYTHONPYCACHEPREFIX": str(home / "pycache")},
            "source": {
                **base,
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPYCACHEPREFIX": str(home / "no-pycache"),
            },
        }
        figures = [
            {"mode": mode, **measure(command, args.runs, env, prefix)}
            for mode, env in modes.items()
            for command in (
                [sys.executable, "-c", "pass"],
                [str(OPENJIP), "--help"],
                [str(OPENJIP), "query", "studies"],
            )
        ]
    result = {
        "benchmark": "cli",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": args.runs,
        "realtime": args.realtime,
        "studies": args.studies,
        "figures": figures,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    for figure in figures:
        print(
            f"{figure['mode']:9s} {figure['command']:22s} wall p50 {figure['wall_ms_p50']:7.1f} ms"
            f"  cpu p50 {figure['cpu_ms_p50']:7.1f} ms  (load {figure['load_average_1min']})"
        )


if __name__ == "__main__":
    main()
