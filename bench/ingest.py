"""C-STORE ingest benchmark: openjip's receiver against Orthanc and dcmtk storescp.

dcmtk ``storescu`` sends >= 1 GiB of phantom CT (generated once, cached in ``bench/data/``) with
one and with four parallel senders to each receiver; the figure is the wall time from the first
association request to the exit of the last ``storescu``. Every run starts a fresh receiver on an
empty store on the same disk as the data, checks that every instance arrived, and deletes it.
All receivers and senders run inside one private network namespace (``unshare -n``), because
Orthanc and storescp listen on every interface; openjip runs there too, so all share loopback.

Orthanc is the peer to beat: like openjip it fdatasyncs every file before acknowledging.
storescp syncs nothing and stands for the page-cache ceiling. ``--store s3,s3-cached`` adds
openjip receivers storing into an S3 server (``--s3-server seaweedfs,moto``, see
``bench/s3peer.py``), without and with the receive cache; they are compared with the same
peers on local disk, and the time the cache takes to drain after the last acknowledgement and
the S3 server's CPU are recorded beside.

Usage: ``make bench`` or ``.venv/bin/python bench/ingest.py [--repeat 3] [--receivers ...]``.
Figures go to ``bench/results/ingest.json``; see ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import s3peer

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data" / "ct"
RESULTS = BENCH_DIR / "results" / "ingest.json"
VENV_BIN = REPO / ".venv" / "bin"
STORESCU = "/usr/bin/storescu"
ECHOSCU = "/usr/bin/echoscu"
STORESCP = "/usr/bin/storescp"
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PORT = 11112
# 21 series x 100 slices x 512² = 2100 instances, 1.03 GiB: just over the 1 GiB the issue asks for.
SERIES, SLICES, SIZE = 21, 100, 512
RECEIVERS = ("openjip", "orthanc", "storescp")
STORES = ("local", "s3", "s3-cached")
S3_SERVERS = s3peer.SERVERS
# Without it every dcmtk C-STORE waits ~40 ms for a delayed ACK (see shared/TOOLING.md).
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
IN_NAMESPACE_FLAG = "--in-namespace"
# The code a received instance passes through, for the record of what was measured.
RECEIVE_PATH = [
    f"src/openjip/{part}"
    for part in ("receiver", "ingest", "storage", "index", "dicom", "config", "site", "cli")
]
LOOPBACK_UP = 'PATH="$PATH:/usr/sbin:/sbin" && ip link set lo up && exec "$@"'


def main() -> int:
    """Parse arguments, make sure the data exists, and run the benchmark in a private netns."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration")
    parser.add_argument(
        "--budget",
        type=float,
        default=600.0,
        help="seconds after which no new repetition starts (at least 2 always run)",
    )
    parser.add_argument("--receivers", default=",".join(RECEIVERS), help="comma-separated")
    parser.add_argument("--senders", default="1,4", help="parallel storescu counts, e.g. 1,4")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON file to write")
    parser.add_argument(
        "--instances", type=int, help="send only the first N instances (quick checks, not figures)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the openjip receiver with py-spy (speedscope JSON) during its 4-sender runs",
    )
    parser.add_argument(
        "--openjip-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra setting for openjip's receiver, e.g. OPENJIP_RECEIVER__WORKERS=4 (recorded)",
    )
    parser.add_argument(
        "--store",
        default="local",
        help="openjip's stores, comma-separated: local, s3 (a PUT per instance before the ack),"
        " s3-cached (the receive cache)",
    )
    parser.add_argument(
        "--s3-server", default="seaweedfs", help="S3 servers for the s3 stores: seaweedfs, moto"
    )
    parser.add_argument(IN_NAMESPACE_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    receivers = [name for name in args.receivers.split(",") if name]
    stores = [name for name in args.store.split(",") if name]
    s3_kinds = [name for name in args.s3_server.split(",") if name]
    if set(stores) - set(STORES) or set(s3_kinds) - set(S3_SERVERS):
        parser.error(f"stores are {', '.join(STORES)}; S3 servers {', '.join(S3_SERVERS)}")
    unknown = set(receivers) - set(RECEIVERS)
    if unknown or args.repeat < 1:
        parser.error(f"receivers are {', '.join(RECEIVERS)}; --repeat must be >= 1")
    senders = [int(count) for count in args.senders.split(",")]
    openjip_env = dict(item.split("=", 1) for item in args.openjip_env if "=" in item)
    if len(openjip_env) != len(args.openjip_env):
        parser.error("--openjip-env takes KEY=VALUE")
    if not args.in_namespace:
        check_tools(receivers)
        ensure_data()
        return reexec_in_namespace()
    files = data_files()[: args.instances]
    peers = [s3peer.start(kind, Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))) for kind in
             (s3_kinds if set(stores) - {"local"} else [])]  # fmt: skip
    try:
        if "openjip" in receivers:
            receivers = openjip_variants(receivers, stores, peers)
        bench = Benchmark(files, receivers, senders, args.repeat, args.budget, args.profile)
        bench.openjip_env = openjip_env
        report = bench.run()
    finally:
        for peer in peers:
            peer.stop()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwritten to {args.results}")
    return 0 if all(r["complete"] for r in report["results"]) else 1


def check_tools(receivers: list[str]) -> None:
    """Fail early, with the fix, when a peer or tool is missing (not the venv's look-alikes)."""
    needed = {STORESCU: "dcmtk", ECHOSCU: "dcmtk", "/usr/bin/unshare": "util-linux"}
    if "storescp" in receivers:
        needed[STORESCP] = "dcmtk"
    if "orthanc" in receivers:
        needed[ORTHANC] = "orthanc"
    missing = sorted({package for tool, package in needed.items() if not Path(tool).exists()})
    if missing:
        sys.exit(f"missing Debian packages: {' '.join(missing)} (run: make system-deps)")
    if os.geteuid() != 0:
        sys.exit("the benchmark needs root for its private network namespace (unshare -n)")


def ensure_data() -> None:
    """Write the phantom CT once; a marker file says which parameters the cache holds."""
    marker = DATA_DIR / "phantom.json"
    wanted = {"series": SERIES, "slices": SLICES, "size": SIZE, "seed": 0}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return
    sys.path.insert(0, str(REPO / "src"))
    from openjip.phantom import write_ct_studies

    shutil.rmtree(DATA_DIR, ignore_errors=True)
    total = SERIES * SLICES
    written = 0

    def progress(_path: Path) -> None:
        nonlocal written
        written += 1
        if written % 300 == 0 or written == total:
            print(f"  phantom CT: {written}/{total} instances", flush=True)

    print(f"writing {total} phantom CT instances ({SIZE}²) to {DATA_DIR} (once) ...", flush=True)
    write_ct_studies(
        DATA_DIR, series=SERIES, slices=SLICES, rows=SIZE, columns=SIZE, progress=progress
    )
    marker.write_text(json.dumps(wanted))


def data_files() -> list[Path]:
    """The cached instances in a stable order (series after series)."""
    return sorted(DATA_DIR.rglob("*.dcm"))


def reexec_in_namespace(script: str = __file__) -> int:
    """Run ``script`` (this one) again inside a new network namespace that has only loopback."""
    command = [sys.executable, script, *sys.argv[1:], IN_NAMESPACE_FLAG]
    wrapper = ["unshare", "-n", "sh", "-c", LOOPBACK_UP, "sh", *command]
    return subprocess.run(wrapper, check=False).returncode


@dataclass
class Run:
    """One timed transfer to a fresh receiver."""

    seconds: float
    instances_stored: int
    cpu_seconds: float
    """CPU time of the receiver's processes (user + system) during the transfer."""
    failures: list[str] = field(default_factory=list)
    drain_seconds: float = 0.0
    """After the last acknowledgement, until the receive cache was uploaded (S3 cached)."""
    server_cpu_seconds: float = 0.0
    """CPU time of the S3 server during the transfer and the drain."""


class Receiver:
    """A storage SCP started fresh in ``workdir`` for one run."""

    name = ""
    ae_title = "ANY-SCP"
    note = ""

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "receiver.log"

    def command(self) -> tuple[list[str], dict[str, str]]:
        """Command line and environment of the receiver."""
        raise NotImplementedError

    def stored(self) -> int:
        """How many distinct instances the receiver holds (after it stopped)."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the receiver and wait until it answers C-ECHO."""
        argv, env = self.command()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log.read_text()[-2000:]}")
            echo = subprocess.run(
                [ECHOSCU, "-aec", self.ae_title, "127.0.0.1", str(PORT)],
                env=DCMTK_ENV,
                capture_output=True,
                check=False,
            )
            if echo.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer C-ECHO within 60 s")

    def drain(self) -> float:
        """Wait until what was acknowledged reached its final place; the seconds it took."""
        return 0.0

    def server_cpu_seconds(self) -> float:
        """CPU time used so far by a server the receiver stores into (none: 0)."""
        return 0.0

    def cleanup(self) -> None:
        """Remove what the run left outside ``workdir``."""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; only the process we started."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class StoreSCP(Receiver):
    """dcmtk storescp, one forked child per association, no sync: the page-cache ceiling."""

    name = "storescp"
    ae_title = "STORESCP"
    note = "dcmtk storescp --fork; never syncs (page-cache ceiling)"

    def command(self) -> tuple[list[str], dict[str, str]]:
        out = self.workdir / "out"
        out.mkdir()
        return [STORESCP, "--fork", "-aet", self.ae_title, "-od", str(out), str(PORT)], DCMTK_ENV

    def stored(self) -> int:
        return sum(1 for _ in (self.workdir / "out").iterdir())


class Orthanc(Receiver):
    """Orthanc with its defaults but a private config: fdatasyncs every file before the ack."""

    name = "orthanc"
    ae_title = "ORTHANC"
    note = "Orthanc defaults (SyncStorageArea: fdatasync each file, 4 DICOM threads), HTTP off"

    def command(self) -> tuple[list[str], dict[str, str]]:
        config = {
            "Name": "openjip-bench",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "DicomAet": self.ae_title,
            "DicomPort": PORT,
            "HttpServerEnabled": False,
            "Plugins": [],
        }
        path = self.workdir / "orthanc.json"
        path.write_text(json.dumps(config))
        return [ORTHANC, str(path)], DCMTK_ENV

    def stored(self) -> int:
        index = self.workdir / "index" / "index"
        with contextlib.closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True)) as db:
            # Orthanc's resource types: 1 patient, 2 study, 3 series, 4 instance.
            query = "SELECT COUNT(*) FROM Resources WHERE resourceType = 4"
            (count,) = db.execute(query).fetchone()
        files = sum(1 for path in (self.workdir / "storage").rglob("*") if path.is_file())
        return min(int(count), files)


class Openjip(Receiver):
    """``openjip receiver`` with default settings (durable before ack) in a fresh OPENJIP_HOME."""

    name = "openjip"
    ae_title = "OPENJIP"
    note = "openjip receiver, default settings (fsync before ack), fresh OPENJIP_HOME"

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = {
            **os.environ,
            "OPENJIP_HOME": str(self.workdir / "home"),
            "OPENJIP_RECEIVER__HOST": "127.0.0.1",
            "OPENJIP_RECEIVER__PORT": str(PORT),
            "OPENJIP_RECEIVER__AE_TITLE": self.ae_title,
            **self.extra_env,
        }
        return [str(VENV_BIN / "openjip"), "receiver"], env

    def settings_env(self) -> dict[str, str]:
        """The environment the receiver ran with, to open its index afterwards."""
        return self.command()[1]

    def stored(self) -> int:
        return min(self.objects(), self.indexed())

    def objects(self) -> int:
        """DICOM objects in the store."""
        return sum(1 for _ in (self.workdir / "home" / "objects" / "dicom").rglob("*.dcm"))

    def indexed(self) -> int:
        """Instances in the index."""
        indexed = subprocess.run(
            [
                sys.executable,
                "-c",
                "from openjip.config import Settings\n"
                "from openjip.index import open_index\n"
                "from openjip.index.base import Query\n"
                "series = open_index(Settings()).find_series(Query())\n"
                "print(sum(s.NumberOfSeriesRelatedInstances for s in series))",
            ],
            env=self.settings_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        return int(indexed.stdout.strip())


class OpenjipS3(Openjip):
    """``openjip receiver`` storing into a fresh bucket of an S3 server (``peer``), with the
    receive cache when ``cached``."""

    peer: s3peer.S3Peer
    cached = False

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(workdir, extra_env)
        self.bucket = f"bench-{uuid.uuid4().hex[:16]}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        argv, env = super().command()
        env.update(self.peer.env(self.bucket), OPENJIP_STORAGE__S3_CACHE=str(self.cached))
        return argv, env

    def drain(self) -> float:
        started = time.monotonic()
        cache = self.workdir / "home" / "s3-cache" / "objects"
        # os.walk, unlike Path.rglob, ignores directories the uploads remove meanwhile.
        while self.cached and any(files for _, _, files in os.walk(cache)):
            time.sleep(0.05)
        return time.monotonic() - started

    def server_cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.peer.process.pid)

    def objects(self) -> int:
        return self.peer.count(self.bucket)

    def cleanup(self) -> None:
        self.peer.remove_bucket(self.bucket)


def openjip_variants(
    receivers: list[str], stores: list[str], peers: list[s3peer.S3Peer]
) -> list[str]:
    """``receivers`` with ``openjip`` replaced by one receiver per store (and S3 server)."""
    names = ["openjip"] if "local" in stores else []
    for store in (store for store in stores if store != "local"):
        for peer in peers:
            name = f"openjip-{store}-{peer.kind}"
            cached = store == "s3-cached"
            note = (
                f"openjip receiver into {peer.kind} S3 (fresh bucket), "
                + ("receive cache: ack once fsynced locally, background upload" if cached
                   else "one PUT per instance before the ack")
            )  # fmt: skip
            RECEIVER_CLASSES[name] = type(
                "OpenjipS3Variant",
                (OpenjipS3,),
                {"name": name, "peer": peer, "cached": cached, "note": note},
            )
            names.append(name)
    index = receivers.index("openjip")
    return [*receivers[:index], *names, *receivers[index + 1 :]]


RECEIVER_CLASSES: dict[str, type[Receiver]] = {
    cls.name: cls for cls in (Openjip, Orthanc, StoreSCP)
}


class Benchmark:
    """Every (receiver, sender count) configuration, ``repeat`` times, interleaved."""

    def __init__(
        self,
        files: list[Path],
        receivers: list[str],
        senders: list[int],
        repeat: int,
        budget: float,
        profile: Path | None,
    ) -> None:
        self.files = files
        self.bytes = sum(path.stat().st_size for path in files)
        self.receivers = receivers
        self.senders = senders
        self.repeat = repeat
        self.budget = budget
        self.profile = profile
        self.runs: dict[tuple[str, int], list[Run]] = {}
        self.openjip_env: dict[str, str] = {}

    def run(self) -> dict[str, Any]:
        """Measure and return the report (also what goes into the JSON file)."""
        started = time.time()
        load_before = os.getloadavg()
        print(
            f"{len(self.files)} instances, {self.bytes / 2**20:.0f} MiB; "
            f"{self.repeat} runs per configuration",
            flush=True,
        )
        for repetition in range(self.repeat):
            elapsed = time.time() - started
            if repetition >= 2 and elapsed + elapsed / repetition > self.budget:
                print(f"  stopping after {repetition} repetitions: time budget", flush=True)
                break
            for name in self.receivers:
                for count in self.senders:
                    run = self.one_run(name, count, profile=repetition == 0)
                    self.runs.setdefault((name, count), []).append(run)
                    rate = self.bytes / 2**20 / run.seconds
                    state = "ok" if not run.failures else "; ".join(run.failures)
                    print(
                        f"  run {repetition + 1}/{self.repeat} {name:9s} {count} sender(s): "
                        f"{run.seconds:6.2f} s {rate:7.1f} MiB/s  {state}",
                        flush=True,
                    )
        return self.report(started, load_before)

    def one_run(self, name: str, senders: int, *, profile: bool) -> Run:
        """Start a fresh receiver, send every file with ``senders`` storescu, verify, clean up."""
        workdir = Path(tempfile.mkdtemp(prefix=f"openjip-bench-{name}-", dir=scratch_dir()))
        extra_env = self.openjip_env if name == "openjip" else None
        receiver = RECEIVER_CLASSES[name](workdir, extra_env)
        try:
            os.sync()  # the previous run's dirty pages must not be written back during this one
            receiver.start()
            profiler = None
            if profile and name == "openjip" and senders == max(self.senders) and self.profile:
                assert receiver.process is not None
                profiler = start_profiler(receiver.process.pid, self.profile)
            assert receiver.process is not None
            cpu_before = tree_cpu_seconds(receiver.process.pid)
            server_before = receiver.server_cpu_seconds()
            seconds, failures = send(self.files, receiver.ae_title, senders)
            cpu = tree_cpu_seconds(receiver.process.pid) - cpu_before
            drain = receiver.drain()
            server_cpu = receiver.server_cpu_seconds() - server_before
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(timeout=60)
            receiver.stop()
            stored = receiver.stored()
            if stored != len(self.files):
                failures.append(f"{stored} of {len(self.files)} instances stored")
            return Run(seconds, stored, cpu, failures, drain, server_cpu)
        finally:
            receiver.stop()
            receiver.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)

    def s3_figures(self, runs: list[Run]) -> dict[str, float]:
        """Drain time and S3 server CPU of the runs that stored into S3."""
        if not any(run.server_cpu_seconds for run in runs):
            return {}
        per_instance = statistics.median(run.server_cpu_seconds for run in runs)
        drain = statistics.median(run.drain_seconds for run in runs)
        return {
            "drain_seconds_after_last_ack": round(drain, 2),
            "s3_server_cpu_ms_per_instance": round(per_instance * 1000 / len(self.files), 2),
        }

    def report(self, started: float, load_before: tuple[float, float, float]) -> dict[str, Any]:
        """Medians per configuration and openjip's ratios to the peers."""
        mib = self.bytes / 2**20
        results = []
        medians: dict[tuple[str, int], float] = {}
        for (name, count), runs in self.runs.items():
            seconds = statistics.median(run.seconds for run in runs)
            medians[(name, count)] = mib / seconds
            results.append(
                {
                    "receiver": name,
                    "senders": count,
                    "mib_per_s": round(mib / seconds, 1),
                    "instances_per_s": round(len(self.files) / seconds, 1),
                    "median_seconds": round(seconds, 3),
                    "runs_seconds": [round(run.seconds, 3) for run in runs],
                    "runs_mib_per_s": [round(mib / run.seconds, 1) for run in runs],
                    "receiver_cpu_ms_per_instance": round(
                        statistics.median(run.cpu_seconds for run in runs) * 1000 / len(self.files),
                        2,
                    ),
                    **self.s3_figures(runs),
                    "complete": all(not run.failures for run in runs),
                    "failures": sorted({f for run in runs for f in run.failures}),
                    "note": RECEIVER_CLASSES[name].note,
                }
            )
        ratios, paired = {}, {}
        openjips = [name for name in self.receivers if name.startswith("openjip")]
        for count, openjip in ((count, name) for count in self.senders for name in openjips):
            ours = self.runs.get((openjip, count), [])
            for peer in ("orthanc", "storescp"):
                theirs = self.runs.get((peer, count), [])
                if ours and theirs:
                    key = f"{openjip}/{peer}@{count}"
                    ratios[key] = round(medians[(openjip, count)] / medians[(peer, count)], 3)
                    # Runs of one repetition ran minutes apart at most, under the same load.
                    pairs = zip(ours, theirs, strict=True)
                    per_repetition = [b.seconds / a.seconds for a, b in pairs]
                    paired[key] = round(statistics.median(per_repetition), 3)
        return {
            "benchmark": "C-STORE ingest, dcmtk storescu -> receiver, loopback in a private netns",
            "date": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(
                timespec="seconds"
            ),
            "duration_seconds": round(time.time() - started, 1),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            },
            "versions": versions(),
            "data": {
                "instances": len(self.files),
                "bytes": self.bytes,
                "mib": round(mib, 1),
                "kind": f"phantom CT {SIZE}x{SIZE}, explicit VR little endian, {SERIES} series",
            },
            "method": (
                "wall time from the first 'Requesting Association' of any storescu to the exit "
                "of the last; fresh receiver and empty store per run, sync before each run; "
                "senders split the files into equal contiguous sets; median of the runs; "
                "ratios_paired: median over repetitions of the ratio within one repetition"
            ),
            "repetitions": min(len(runs) for runs in self.runs.values()),
            "openjip_settings_changed": self.openjip_env,
            "results": results,
            "ratios": ratios,
            "ratios_paired": paired,
        }


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, its reaped children and its living descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        # Fields after the parenthesised command name: state ppid ... utime stime cutime cstime
        fields = text[text.rindex(")") + 2 :].split()
        process = int(stat.parent.name)
        parents[process] = int(fields[1])
        times[process] = sum(int(value) for value in fields[11:15]) / ticks
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier += children
    return sum(times.get(process, 0.0) for process in tree)


def scratch_dir() -> Path:
    """Where receivers store: a temp dir on the same file system as the data."""
    tmp = Path(tempfile.gettempdir())
    if tmp.stat().st_dev == DATA_DIR.stat().st_dev:
        return tmp
    scratch = BENCH_DIR / "data" / "runs"
    scratch.mkdir(exist_ok=True)
    return scratch


def send(files: list[Path], ae_title: str, senders: int) -> tuple[float, list[str]]:
    """Send ``files`` with ``senders`` parallel storescu; return seconds and failures."""
    chunk = -(-len(files) // senders)
    started = [Sender(files[i : i + chunk], ae_title) for i in range(0, len(files), chunk)]
    for sender in started:
        sender.wait()
    failures = [failure for sender in started for failure in sender.failures]
    requested = [sender.requested for sender in started if sender.requested is not None]
    if len(requested) < len(started):
        return float("nan"), [*failures, "a storescu never requested its association"]
    return max(sender.ended for sender in started) - min(requested), failures


class Sender:
    """One storescu process; a thread reads its log for the association request and errors."""

    def __init__(self, files: list[Path], ae_title: str) -> None:
        self.requested: float | None = None
        self.ended = 0.0
        self.failures: list[str] = []
        self.process = subprocess.Popen(
            [STORESCU, "-v", "-aec", ae_title, "127.0.0.1", str(PORT), *map(str, files)],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if self.requested is None and line.startswith("I: Requesting Association"):
                self.requested = time.monotonic()
            elif line[:3] in ("E: ", "F: ") and len(self.failures) < 5:
                self.failures.append(line.strip())

    def wait(self) -> None:
        """Wait for the exit, note its time, and the exit status if it failed."""
        self.process.wait()
        self.ended = time.monotonic()
        self.reader.join()
        if self.process.returncode != 0:
            self.failures.append(f"storescu exited with {self.process.returncode}")


def start_profiler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy on the receiver and its worker processes while the senders run."""
    py_spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    if not Path(py_spy).exists():
        sys.exit("--profile needs py-spy: .venv/bin/pip install py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    profiler = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--idle",
            "--format",
            "speedscope",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches before the first association
    return profiler


def versions() -> dict[str, Any]:
    """Versions of everything measured, so figures can be compared across machines."""

    def first_line(argv: list[str], pattern: str) -> str:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        match = re.search(pattern, result.stdout + result.stderr)
        return match.group(0) if match else "unknown"

    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", *RECEIVE_PATH],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split("\n")
    return {
        "openjip_commit": commit or "unknown",
        # The venv runs the working tree: say whether it differed from the commit.
        "openjip_uncommitted_files": sorted(line[3:] for line in changed if line.strip()),
        "dcmtk": first_line([STORESCU, "--version"], r"v\d+\.\d+\.\d+"),
        "orthanc": first_line([ORTHANC, "--version"], r"\d+\.\d+\.\d+"),
        "python": platform.python_version(),
    }


def print_table(report: dict[str, Any]) -> None:
    """The medians as a table, openjip's ratios under it."""
    print(
        f"\n{'receiver':32s} {'senders':>7s} {'MiB/s':>8s} {'inst/s':>8s} {'CPU ms/inst':>11s}"
        "  runs (MiB/s)"
    )
    for row in sorted(report["results"], key=lambda r: (r["senders"], r["receiver"])):
        runs = ", ".join(f"{x:.0f}" for x in row["runs_mib_per_s"])
        mark = "" if row["complete"] else "  INCOMPLETE: " + "; ".join(row["failures"])
        print(
            f"{row['receiver']:32s} {row['senders']:7d} {row['mib_per_s']:8.1f} "
            f"{row['instances_per_s']:8.1f} {row['receiver_cpu_ms_per_instance']:11.2f}"
            f"  {runs}{mark}"
        )
    for row in (row for row in report["results"] if "drain_seconds_after_last_ack" in row):
        print(
            f"{row['receiver']} @{row['senders']}: drain {row['drain_seconds_after_last_ack']} s"
            f" after the last ack, S3 server {row['s3_server_cpu_ms_per_instance']} ms CPU/inst"
        )
    print(f"\n{'ratio of medians':44s} {'x':>6s}   median of per-repetition ratios")
    for name, ratio in report["ratios"].items():
        print(f"{name:44s} {ratio:6.2f}   {report['ratios_paired'][name]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
