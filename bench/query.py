"""Query benchmark: C-FIND against openjip and Orthanc, QIDO-RS latency of ``openjip web``.

1. A synthetic index of 50,000 studies / 100,000 series / 1,000,000 instances (20,000
   patients, ten years of study dates, five modalities) is generated once, bulk-inserted into a
   SQLite file in the schema of :mod:`openjip.index.sqlite`, and cached in ``bench/data/query/``.
2. Orthanc cannot be loaded with a million instances in minutes (each one is a C-STORE), so a
   smaller set goes to both: the first ``--orthanc-studies`` studies (default 5,000 studies,
   10,000 series, one small instance per series) are written as DICOM files, sent to Orthanc
   with dcmtk storescu, and bulk-inserted into a second openjip index of the very same records.
3. dcmtk ``findscu`` (``TCP_NODELAY=1``) runs STUDY and SERIES level queries against openjip
   (large and small index) and Orthanc (small set); the figure is the wall time of each
   ``findscu`` run, association and process start included, the same for both peers.
4. QIDO-RS requests go to ``openjip web`` on the large index over one kept-alive HTTP
   connection; p50/p99 of the response time.

Everything runs inside one private network namespace (Orthanc listens on every interface).
Usage: ``make bench`` or ``.venv/bin/python bench/query.py [--repeat 50]``; figures go to
``bench/results/query.json``.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ingest import DCMTK_ENV, ECHOSCU, LOOPBACK_UP, ORTHANC, VENV_BIN, versions
from openjip.dicom import instance_key
from openjip.index import Query
from openjip.index.sqlite import INSTANCE_COLUMNS, SERIES_FIELDS, STUDY_FIELDS, SQLiteIndex

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data" / "query"
RESULTS = BENCH_DIR / "results" / "query.json"
IN_NAMESPACE_FLAG = "--in-namespace"
FINDSCU = "/usr/bin/findscu"
STORESCU = "/usr/bin/storescu"

STUDIES = 50_000
SERIES_PER_STUDY = 2
INSTANCES_PER_SERIES = 10
PATIENTS = 20_000
FIRST_DATE = datetime.date(2015, 1, 1)
DAYS = 3650
MODALITIES = ("CT", "MR", "CR", "US", "PT")
SYLLABLES = ("KA", "LO", "MEN", "SI", "TRA", "BER", "NO", "VA", "DU", "RI", "GAR", "SEN", "MÜL",
             "HO", "PE", "TA", "WIN", "ZO", "CHI", "LEF")  # fmt: skip
"""Surnames are three syllables: 8,000 of them, so a name prefix is as selective as in a PACS."""
GIVEN = ("ANNA", "JOHN", "MARIA", "PETER", "LENA", "OMAR", "YUKI", "CARLOS")
DESCRIPTIONS = ("CT Chest", "MR Brain", "CR Thorax", "US Abdomen", "PET/CT Whole body")
UID_ROOT = "1.2.826.0.1.3680043.10.1137"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
OPENJIP_PORT, ORTHANC_PORT, WEB_PORT, ORTHANC_HTTP = 11112, 4242, 8042, 8043
SENDERS = 4
"""storescu processes loading Orthanc at once."""


# -- the synthetic records --------------------------------------------------------------------


@dataclass(frozen=True)
class Study:
    """One synthetic study; everything else is derived from its number."""

    number: int

    @property
    def uid(self) -> str:
        return f"{UID_ROOT}.1.{self.number}"

    @property
    def patient(self) -> int:
        return (self.number * 7919) % PATIENTS

    @property
    def patient_id(self) -> str:
        return f"PAT{self.patient:06d}"

    @property
    def patient_name(self) -> str:
        n, count = self.patient, len(SYLLABLES)
        surname = self.surname_prefix + SYLLABLES[n // count**2 % count]
        return f"{surname}^{GIVEN[n % len(GIVEN)]}"

    @property
    def surname_prefix(self) -> str:
        """The first two syllables of the surname: shared by 1 in 400 patients."""
        n, count = self.patient, len(SYLLABLES)
        return SYLLABLES[n % count] + SYLLABLES[n // count % count]

    @property
    def date(self) -> str:
        day = FIRST_DATE + datetime.timedelta(days=(self.number * 37) % DAYS)
        return day.strftime("%Y%m%d")

    def fields(self) -> dict[str, Any]:
        """The study-level fields of the records (STUDY_FIELDS of the SQLite index)."""
        return {
            "PatientID": self.patient_id,
            "PatientName": self.patient_name,
            "PatientBirthDate": f"{1930 + self.patient % 80}0101",
            "PatientSex": "FM"[self.patient % 2],
            "StudyDate": self.date,
            "StudyTime": f"{8 + self.number % 10:02d}{self.number % 60:02d}00",
            "StudyDescription": DESCRIPTIONS[self.number % len(DESCRIPTIONS)],
            "StudyID": str(self.number % 100000),
            "AccessionNumber": f"ACC{self.number:07d}",
            "ReferringPhysicianName": "HOUSE^G",
        }

    def series_uid(self, series: int) -> str:
        return f"{UID_ROOT}.2.{self.number}.{series + 1}"

    def modality(self, series: int) -> str:
        return MODALITIES[(self.number + series) % len(MODALITIES)]


def bulk_load(path: Path, studies: int, instances_per_series: int) -> None:
    """Create the SQLite index at ``path`` holding the first ``studies`` synthetic studies."""
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    SQLiteIndex(path).check()  # creates the file with openjip's own schema
    received = time.time()
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    study_rows, series_rows, text_rows, instance_rows, header_rows = [], [], [], [], []
    series_id = instance_id = 0
    for number in range(studies):
        study = Study(number)
        fields = study.fields()
        for s in range(SERIES_PER_STUDY):
            series_id += 1
            series_uid = study.series_uid(s)
            modality = study.modality(s)
            series_fields = {
                "Modality": modality,
                "SeriesNumber": s + 1,
                "SeriesDescription": f"{modality} series {s + 1}",
                "BodyPartExamined": "CHEST",
                "Manufacturer": "BENCH",
                "source_ae": "BENCH",
                "derived_from": "",
            }
            size = instances_per_series * 524_288
            series_rows.append(
                (series_id, series_uid, study.uid, *(series_fields[f] for f in SERIES_FIELDS),
                 instances_per_series, size, received, received, 1, 1)
            )  # fmt: skip
            text_rows.append(
                (series_id, fields["StudyDescription"], series_fields["SeriesDescription"],
                 fields["PatientName"])
            )  # fmt: skip
            for k in range(instances_per_series):
                instance_id += 1
                sop_uid = f"{series_uid}.{k + 1}"
                record = {
                    **fields,
                    **series_fields,
                    "SOPInstanceUID": sop_uid,
                    "SeriesInstanceUID": series_uid,
                    "StudyInstanceUID": study.uid,
                    "SOPClassUID": CT_IMAGE_STORAGE,
                    "InstanceNumber": k + 1,
                    "TransferSyntaxUID": EXPLICIT_LE,
                    "object_key": instance_key(study.uid, series_uid, sop_uid),
                    "size": 524_288,
                    "received_at": received,
                }
                instance_rows.append((instance_id, *(record[c] for c in INSTANCE_COLUMNS)))
                header_rows.append((instance_id, _header(record)))
        study_rows.append(
            (number + 1, study.uid, *(fields[f] for f in STUDY_FIELDS), SERIES_PER_STUDY,
             SERIES_PER_STUDY * instances_per_series, received)
        )  # fmt: skip
    with db:
        db.executemany(
            f"INSERT INTO studies VALUES ({', '.join('?' * (len(STUDY_FIELDS) + 5))})", study_rows
        )
        db.executemany(
            f"INSERT INTO series (id, SeriesInstanceUID, StudyInstanceUID,"
            f" {', '.join(SERIES_FIELDS)}, NumberOfSeriesRelatedInstances, size,"
            f" first_received_at, last_received_at, complete, version)"
            f" VALUES ({', '.join('?' * (len(SERIES_FIELDS) + 9))})",
            series_rows,
        )
        db.executemany(
            "INSERT INTO series_text (rowid, StudyDescription, SeriesDescription, PatientName)"
            " VALUES (?, ?, ?, ?)",
            text_rows,
        )
        db.executemany(
            f"INSERT INTO instances (id, {', '.join(INSTANCE_COLUMNS)})"
            f" VALUES ({', '.join('?' * (len(INSTANCE_COLUMNS) + 1))})",
            instance_rows,
        )
        db.executemany("INSERT INTO instance_headers VALUES (?, ?)", header_rows)
    db.execute("ANALYZE")
    db.close()
    _check_loaded(path, studies, instances_per_series)


def _header(record: dict[str, Any]) -> str:
    def element(vr: str, value: Any) -> dict[str, Any]:
        return {"vr": vr, "Value": [{"Alphabetic": value} if vr == "PN" else value]}

    return json.dumps(
        {
            "00080016": element("UI", record["SOPClassUID"]),
            "00080018": element("UI", record["SOPInstanceUID"]),
            "00080020": element("DA", record["StudyDate"]),
            "00080060": element("CS", record["Modality"]),
            "00100010": element("PN", record["PatientName"]),
            "00100020": element("LO", record["PatientID"]),
            "0020000D": element("UI", record["StudyInstanceUID"]),
            "0020000E": element("UI", record["SeriesInstanceUID"]),
            "00200013": element("IS", record["InstanceNumber"]),
            "00280010": element("US", 512),
            "00280011": element("US", 512),
        },
        separators=(",", ":"),
    )


def _check_loaded(path: Path, studies: int, instances_per_series: int) -> None:
    """The index API sees what was loaded (counts of one study, number of studies)."""
    index = SQLiteIndex(path)
    try:
        probe = Study(studies // 2)
        (study,) = index.find_studies(Query(StudyInstanceUID=[probe.uid]))
        assert study.NumberOfStudyRelatedInstances == SERIES_PER_STUDY * instances_per_series
        assert study.ModalitiesInStudy == sorted({probe.modality(s) for s in range(2)})
        assert len(index.find_studies(Query(PatientID=probe.patient_id))) >= 1
    finally:
        index.close()


def ensure_index(path: Path, studies: int, instances_per_series: int) -> float:
    """The cached index (made if missing or of other parameters); seconds spent making it."""
    stamp = path.with_suffix(".json")
    wanted = {"studies": studies, "instances_per_series": instances_per_series, "version": 2}
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return 0.0
    print(f"generating {path.name}: {studies} studies ...", flush=True)
    started = time.monotonic()
    path.parent.mkdir(parents=True, exist_ok=True)
    bulk_load(path, studies, instances_per_series)
    stamp.write_text(json.dumps(wanted))
    return time.monotonic() - started


def write_dicom_files(out: Path, studies: int) -> list[Path]:
    """One small CT instance (8x8 pixels) per series of the first ``studies`` studies, spread
    over one sub-folder per storescu process."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    existing = sorted(out.glob("*/*.dcm"))
    if len(existing) == studies * SERIES_PER_STUDY:
        return existing
    for part in range(SENDERS):
        (out / str(part)).mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(studies):
        study = Study(number)
        for s in range(SERIES_PER_STUDY):
            ds = Dataset()
            for keyword, value in study.fields().items():
                setattr(ds, keyword, value)
            ds.StudyInstanceUID = study.uid
            ds.SeriesInstanceUID = study.series_uid(s)
            ds.SOPInstanceUID = f"{study.series_uid(s)}.1"
            ds.SOPClassUID = CT_IMAGE_STORAGE
            ds.Modality = study.modality(s)
            ds.SeriesNumber = s + 1
            ds.InstanceNumber = 1
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.Rows = ds.Columns = 8
            ds.BitsAllocated = ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 0
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.PixelData = bytes(128)
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            path = out / str(number % SENDERS) / f"{number:06d}-{s}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths


# -- peers -------------------------------------------------------------------------------------


class Peer:
    """A server process we started (and only that one is stopped)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("wb") as out:
            self.process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.log = log

    def wait_for_echo(self, port: int, ae_title: str) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"exited at start:\n{self.log.read_text()[-2000:]}")
            echo = [ECHOSCU, "-aec", ae_title, "127.0.0.1", str(port)]
            if subprocess.run(echo, env=DCMTK_ENV, capture_output=True).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"nothing answered C-ECHO on {port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def openjip_env(index: Path, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OPENJIP_HOME": str(home),
        "OPENJIP_INDEX__PATH": str(index),
        "OPENJIP_RECEIVER__PORT": str(OPENJIP_PORT),
        "OPENJIP_WEB__PORT": str(WEB_PORT),
        "OPENJIP_LOG_LEVEL": "warning",
        # Query cost alone (bench/auth.py measures what authentication adds): the web service
        # serves callers without credentials, which it allows on loopback only.
        "OPENJIP_ACCESS__ALLOW_ANONYMOUS": "true",
        "OPENJIP_ACCESS__ANONYMOUS_ROLE": "admin",
    }


def start_orthanc(work: Path) -> Peer:
    config = {
        "Name": "openjip-query-bench",
        "StorageDirectory": str(work / "storage"),
        "IndexDirectory": str(work / "index"),
        "DicomAet": "ORTHANC",
        "DicomPort": ORTHANC_PORT,
        "HttpPort": ORTHANC_HTTP,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowStore": True,
        "SyncStorageArea": False,  # loading only; queries never write
        "Plugins": [],
    }
    (work / "orthanc.json").write_text(json.dumps(config))
    peer = Peer([ORTHANC, str(work / "orthanc.json")], DCMTK_ENV, work / "orthanc.log")
    peer.wait_for_echo(ORTHANC_PORT, "ORTHANC")
    return peer


def orthanc_count(kind: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", ORTHANC_HTTP, timeout=60)
    conn.request("GET", "/statistics")
    return int(json.loads(conn.getresponse().read())[f"Count{kind}"])


def load_orthanc(folder: Path) -> float:
    """Send the files with storescu, one process per sub-folder; seconds it took."""
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [STORESCU, "-aec", "ORTHANC", "+sd", "127.0.0.1", str(ORTHANC_PORT),
             str(folder / str(part))],
            env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for part in range(SENDERS)
    ]  # fmt: skip
    for process in processes:
        _, error = process.communicate()
        if process.returncode:
            raise RuntimeError(f"storescu to Orthanc failed: {error.decode()[-2000:]}")
    return time.monotonic() - started


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Figure:
    """Timings of one kind of request, in milliseconds."""

    samples: list[float]
    results: list[int]

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.samples)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return {
            "n": len(ordered),
            "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(p99, 2),
            "mean_results": round(statistics.mean(self.results), 1),
        }


def _month(rng: random.Random, n: int) -> str:
    first = datetime.datetime.strptime(Study(rng.randrange(n)).date, "%Y%m%d")
    last = first + datetime.timedelta(days=30)
    return f"StudyDate={first:%Y%m%d}-{last:%Y%m%d}"


def week(rng: random.Random, n: int) -> str:
    first = datetime.datetime.strptime(Study(rng.randrange(n)).date, "%Y%m%d")
    return f"StudyDate={first:%Y%m%d}-{first + datetime.timedelta(days=6):%Y%m%d}"


ECHO_BASELINE = "C-ECHO (echoscu: process, association, release; no query)"
FindKeys = Callable[[random.Random, int], list[str]]

FIND_QUERIES: dict[str, tuple[str, FindKeys]] = {
    "STUDY PatientID": (
        "STUDY",
        lambda rng, n: [f"PatientID={Study(rng.randrange(n)).patient_id}"],
    ),
    "STUDY StudyDate week + PatientName *^GIVEN": (
        "STUDY",
        lambda rng, n: [week(rng, n), "PatientName=*^" + GIVEN[rng.randrange(len(GIVEN))]],
    ),
    "SERIES of one study": (
        "SERIES",
        lambda rng, n: [f"StudyInstanceUID={Study(rng.randrange(n)).uid}"],
    ),
    "SERIES Modality in a month": ("SERIES", lambda rng, n: ["Modality=MR", _month(rng, n)]),
}
RETURN_KEYS = {
    "STUDY": ["StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "ModalitiesInStudy",
              "NumberOfStudyRelatedInstances", "AccessionNumber"],
    "SERIES": ["StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber",
               "NumberOfSeriesRelatedInstances"],
}  # fmt: skip


def findscu(port: int, ae_title: str, level: str, keys: list[str], out: Path) -> tuple[float, int]:
    """One findscu run: milliseconds, number of matches."""
    args = [FINDSCU, "-S", "-aec", ae_title, "-X", "-od", str(out)]
    matched = {key.split("=")[0] for key in keys}
    returned = [key for key in RETURN_KEYS[level] if key not in matched]
    for key in [f"QueryRetrieveLevel={level}", *keys, *returned]:
        args += ["-k", key]
    for old in out.glob("rsp*.dcm"):
        old.unlink()
    started = time.perf_counter()
    run = subprocess.run([*args, "127.0.0.1", str(port)], env=DCMTK_ENV, capture_output=True)
    elapsed = (time.perf_counter() - started) * 1000
    if run.returncode:
        raise RuntimeError(f"findscu failed: {run.stderr.decode()[-1000:]}")
    return elapsed, sum(1 for _ in out.glob("rsp*.dcm"))


def measure_find(port: int, ae_title: str, studies: int, repeat: int, work: Path) -> dict[str, Any]:
    out = work / f"find-{ae_title}-{studies}"
    out.mkdir(parents=True, exist_ok=True)
    figures = {}
    for name, (level, make_keys) in FIND_QUERIES.items():
        rng = random.Random(name)  # the same queries for every peer
        figure = Figure([], [])
        for _ in range(repeat):
            ms, count = findscu(port, ae_title, level, make_keys(rng, studies), out)
            figure.samples.append(ms)
            figure.results.append(count)
        figures[name] = figure.summary()
    echo = Figure([], [])
    for _ in range(repeat):
        started = time.perf_counter()
        echo_command = [ECHOSCU, "-aec", ae_title, "127.0.0.1", str(port)]
        subprocess.run(echo_command, env=DCMTK_ENV, capture_output=True, check=True)
        echo.samples.append((time.perf_counter() - started) * 1000)
        echo.results.append(0)
    figures[ECHO_BASELINE] = echo.summary()
    return figures


def _any_study(rng: random.Random) -> Study:
    return Study(rng.randrange(STUDIES))


def _some_series(rng: random.Random) -> str:
    study = _any_study(rng)
    return f"studies/{study.uid}/series/{study.series_uid(0)}/instances"


QIDO_QUERIES: dict[str, Callable[[random.Random], str]] = {
    "studies?PatientID": lambda rng: f"studies?PatientID={_any_study(rng).patient_id}",
    "studies?StudyDate=week&limit=50": lambda rng: f"studies?{week(rng, STUDIES)}&limit=50",
    "studies?PatientName=prefix*": lambda rng: (
        f"studies?PatientName={_any_study(rng).surname_prefix}*"
    ),
    "studies/{uid}/series": lambda rng: f"studies/{_any_study(rng).uid}/series",
    "studies/{uid}/series/{uid}/instances": _some_series,
}
"""QIDO-RS paths below /dicom-web/ by kind, each made from a seeded random generator."""


def measure_qido(repeat: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", WEB_PORT, timeout=60)
    figures = {}
    for name, make_path in QIDO_QUERIES.items():
        rng = random.Random(name)
        figure = Figure([], [])
        for number in range(repeat + 5):
            path = "/dicom-web/" + quote(make_path(rng), safe="/?=&*^-.")
            started = time.perf_counter()
            conn.request("GET", path, headers={"Accept": "application/dicom+json"})
            response = conn.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200:
                raise RuntimeError(f"QIDO {path}: {response.status} {body[:300]!r}")
            if number >= 5:  # the first requests warm caches
                figure.samples.append(elapsed)
                figure.results.append(len(json.loads(body)))
        figures[name] = figure.summary()
    return figures


def wait_for_http(port: int, path: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no HTTP answer on {port}{path}")


def run_in_namespace(args: argparse.Namespace) -> dict[str, Any]:
    large = DATA_DIR / "index-large.sqlite3"
    small = DATA_DIR / f"index-{args.orthanc_studies}.sqlite3"
    generation = {
        "large_index_seconds": round(ensure_index(large, STUDIES, INSTANCES_PER_SERIES), 1),
        "small_index_seconds": round(ensure_index(small, args.orthanc_studies, 1), 1),
    }
    folder = DATA_DIR / f"dicom-{args.orthanc_studies}"
    files = write_dicom_files(folder, args.orthanc_studies)
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "machine": {"cpus": os.cpu_count(), "load_average_before": os.getloadavg()},
        "data": {
            "large": {"studies": STUDIES, "series": STUDIES * SERIES_PER_STUDY,
                      "instances": STUDIES * SERIES_PER_STUDY * INSTANCES_PER_SERIES,
                      "patients": PATIENTS},
            "orthanc_and_small_openjip": {
                "studies": args.orthanc_studies,
                "series": args.orthanc_studies * SERIES_PER_STUDY,
                "instances": args.orthanc_studies * SERIES_PER_STUDY,
                "why_smaller": "Orthanc is loaded instance by instance over C-STORE",
            },
            **generation,
        },
        "method": {
            "c_find": "wall time of one dcmtk findscu run (process start, association, query,"
                      " release), TCP_NODELAY=1, same random keys for every peer",
            "qido": "response time of GET over one kept-alive HTTP/1.1 connection, after 5 warm-up"
                    " requests",
            "repeat": args.repeat,
        },
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="openjip-query-bench-") as tmp:
        work = Path(tmp)
        find: dict[str, Any] = {}
        for label, index in (("openjip_large", large), ("openjip_small", small)):
            home = work / label
            home.mkdir()
            env = openjip_env(index, home)
            peer = Peer([str(VENV_BIN / "openjip"), "receiver"], env, work / f"{label}.log")
            try:
                peer.wait_for_echo(OPENJIP_PORT, "OPENJIP")
                studies = STUDIES if label == "openjip_large" else args.orthanc_studies
                find[label] = measure_find(OPENJIP_PORT, "OPENJIP", studies, args.repeat, work)
            finally:
                peer.stop()
            if label == "openjip_large":
                web = Peer([str(VENV_BIN / "openjip"), "web"], env, work / "web.log")
                try:
                    wait_for_http(WEB_PORT, "/healthz")
                    report["qido"] = measure_qido(args.qido_repeat)
                finally:
                    web.stop()
        orthanc = start_orthanc(work)
        try:
            seconds = load_orthanc(folder)
            stored = orthanc_count("Instances")
            if stored != len(files):
                raise RuntimeError(f"Orthanc holds {stored} of {len(files)} instances")
            report["data"]["orthanc_load_seconds"] = round(seconds, 1)
            find["orthanc_small"] = measure_find(
                ORTHANC_PORT, "ORTHANC", args.orthanc_studies, args.repeat, work
            )
        finally:
            orthanc.stop()
    report["c_find"] = find
    report["machine"]["load_average_after"] = os.getloadavg()
    report["targets"] = targets(report)
    return report


def targets(report: dict[str, Any]) -> dict[str, Any]:
    qido_worst = max(figure["p99_ms"] for figure in report["qido"].values())
    ratios = {
        name: round(
            report["c_find"]["openjip_small"][name]["p50_ms"]
            / report["c_find"]["orthanc_small"][name]["p50_ms"],
            2,
        )
        for name in FIND_QUERIES
    }
    return {
        "qido_p99_ms_worst": qido_worst,
        "qido_p99_le_10ms": qido_worst <= 10.0,
        "c_find_p50_openjip_over_orthanc_same_data": ratios,
        "c_find_not_slower_than_orthanc": all(ratio <= 1.0 for ratio in ratios.values()),
    }


def print_report(report: dict[str, Any]) -> None:
    print("\nC-FIND (findscu wall ms, p50 / p99, mean matches)")
    for peer, figures in report["c_find"].items():
        for name, figure in figures.items():
            print(f"  {peer:15} {name:45} {figure['p50_ms']:8.1f} {figure['p99_ms']:8.1f}"
                  f" {figure['mean_results']:8.1f}")  # fmt: skip
    print("QIDO-RS on the large index (ms, p50 / p99, mean matches)")
    for name, figure in report["qido"].items():
        print(f"  {name:45} {figure['p50_ms']:8.2f} {figure['p99_ms']:8.2f}"
              f" {figure['mean_results']:8.1f}")  # fmt: skip
    print("targets:", json.dumps(report["targets"], indent=2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="findscu runs per query kind")
    parser.add_argument("--qido-repeat", type=int, default=300, help="requests per QIDO kind")
    parser.add_argument(
        "--orthanc-studies", type=int, default=5000, help="studies loaded into Orthanc"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON file to write")
    parser.add_argument(IN_NAMESPACE_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.in_namespace:
        command = [sys.executable, __file__, *sys.argv[1:], IN_NAMESPACE_FLAG]
        wrapper = ["unshare", "-n", "sh", "-c", LOOPBACK_UP, "sh", *command]
        return subprocess.run(wrapper, check=False).returncode
    report = run_in_namespace(args)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"\nwritten to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
