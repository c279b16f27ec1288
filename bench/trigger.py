"""Series-arrival trigger benchmark: from the last instance of a CT series arriving at a local
site to its ct-body-mask run starting in Airflow, and to the run's SEG being in the index.

A real local site runs here: the receiver (with the completion sweep and its series-arrival runs),
Airflow's api-server, scheduler and dag-processor (LocalExecutor), all on loopback. dcmtk
``storescu`` sends N phantom CT series one after the other; for each series the clock starts
when storescu returns (the last instance is acknowledged, so stored and indexed). Reported per
series and as p50/p95:

* ``idle_window_s``: the configured idle window after which a series counts as complete;
* ``run_started_s``: until Airflow's run start_date (the scheduler set it running);
* ``run_started_after_window_s``: the same minus the idle window (target: <= 2 s);
* ``result_indexed_s``: until the SEG derived from the series is in the index.

Usage: ``.venv/bin/python bench/trigger.py [--series 10] [--slices 40] [--size 256]``.
Figures go to ``bench/results/trigger.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import pydicom

from openjip.airflow.client import AirflowClient, AirflowError, AirflowUnavailable
from openjip.airflow.local import AirflowComponent
from openjip.airflow.series_arrival import SeriesArrivalRuns
from openjip.config import Settings
from openjip.config.settings import AirflowSettings, ReceiverSettings
from openjip.index import MetadataIndex, Query, SeriesRecord, open_index
from openjip.phantom import write_ct_series
from openjip.receiver import ReceiverService

BENCH_DIR = Path(__file__).resolve().parent
WORKFLOW = "ct-body-mask"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 3),
        "p95": round(_percentile(values, 0.95), 3),
        "max": round(max(values), 3),
    }


def _epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _send(files: list[Path], port: int) -> None:
    command = ["/usr/bin/storescu", "-aec", "OPENJIP", "127.0.0.1", str(port), *map(str, files)]
    subprocess.run(command, env=dict(os.environ, TCP_NODELAY="1"), check=True, capture_output=True)


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
        except AirflowUnavailable:
            result = None
        if result:
            return result
        time.sleep(0.1)
    raise TimeoutError(f"no {what} after {timeout:.0f} s")


def run(series_count: int, slices: int, size: int, idle: float) -> dict[str, Any]:
    """Run the benchmark in a fresh site; return the figures."""
    work = Path(tempfile.mkdtemp(prefix="openjip-bench-trigger-"))
    settings = Settings(
        home=work / "home",
        airflow=AirflowSettings(port=0, parallelism=2, trigger_retry_seconds=1.0),
        receiver=ReceiverSettings(
            port=0, workers=1, series_idle_seconds=idle, sweep_interval_seconds=0.25
        ),
    )
    os.environ["OPENJIP_HOME"] = str(settings.home_dir)
    series_files = [
        write_ct_series(
            work / "data" / str(n),
            slices=slices,
            rows=size,
            columns=size,
            patient_id=f"BENCH{n:03d}",
            seed=n,
        )
        for n in range(series_count)
    ]
    started_at = time.monotonic()
    airflow = AirflowComponent(settings)
    airflow.start()
    airflow_start_s = time.monotonic() - started_at
    runs = SeriesArrivalRuns(settings)
    receiver = ReceiverService(settings, listeners=[runs])
    receiver.start()
    client = airflow.client()
    index = open_index(settings)
    rows = []
    try:
        for files in series_files:
            uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
            _send(files, receiver.address[1])
            arrived = time.time()
            run_id = f"openjip__{uid}__v1"
            started = _wait(partial(_run_start, client, run_id), 300, "run start")
            _wait(partial(_results, index, uid), 600, "SEG in the index")
            indexed = time.time()
            row = {
                "series": uid,
                "instances": len(files),
                "run_started_s": round(_epoch(started) - arrived, 3),
                "result_indexed_s": round(indexed - arrived, 3),
            }
            row["run_started_after_window_s"] = round(row["run_started_s"] - idle, 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        receiver.stop()
        runs.stop()
        client.close()
        index.close()
        airflow.stop()
    return {
        "benchmark": "trigger",
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": os.getloadavg()[0],
        },
        "setup": {
            "workflow": WORKFLOW,
            "series": series_count,
            "slices": slices,
            "size": size,
            "idle_window_s": idle,
            "sweep_interval_s": settings.receiver.sweep_interval_seconds,
            "airflow_parallelism": settings.airflow.parallelism,
            "airflow_start_s": round(airflow_start_s, 1),
        },
        "run_started_s": _summary([r["run_started_s"] for r in rows]),
        "run_started_after_window_s": _summary([r["run_started_after_window_s"] for r in rows]),
        "result_indexed_s": _summary([r["result_indexed_s"] for r in rows]),
        "target_run_started_after_window_s": 2.0,
        "series_runs": rows,
    }


def _run_start(client: AirflowClient, run_id: str) -> str | None:
    """The run's start_date once the scheduler started it, else None."""
    try:
        return client.run(WORKFLOW, run_id).get("start_date")
    except AirflowError as error:
        if error.status == 404:  # not triggered yet
            return None
        raise


def _results(index: MetadataIndex, uid: str) -> list[SeriesRecord]:
    return [s for s in index.find_series(Query()) if s.derived_from == uid]


def main() -> None:
    """Parse arguments, run, write bench/results/trigger.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10)
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--idle", type=float, default=2.0, help="idle window in seconds")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "results" / "trigger.json")
    args = parser.parse_args()
    figures = run(args.series, args.slices, args.size, args.idle)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: figures[k] for k in ("run_started_after_window_s", "result_indexed_s")}))


if __name__ == "__main__":
    main()
