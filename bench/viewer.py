"""Viewer benchmark: what OHIF asks of DICOMweb, ``openjip web`` against Orthanc with its
DICOMweb plugin, on the same study, plus the first image drawn by OHIF from openjip.

1. One synthetic chest CT study is written once into ``bench/data/viewer/``: a 500-slice 512²
   series and a 500-slice 256² series of the same study (1,000 instances).
2. openjip's store and index are filled by its ingest path; Orthanc (with
   ``libOrthancDicomWeb.so``) is loaded over its REST API. Neither load is timed.
3. WADO-RS metadata of the whole study (1,000 instances) and frames of every instance of the
   500-slice series (``frames/1``, as stored, six connections as a browser opens them) are
   fetched from both; the figure is the median wall time of ``--repeat`` rounds.
4. Headless Chromium (a fresh profile each time: nothing cached) opens
   ``/viewer/viewer?StudyInstanceUIDs=...``; the figure is the median time until the viewport
   shows the CT (dismissing OHIF's first-visit tour on the way) of ``--ohif-repeat`` rounds.
   The same OHIF build is timed three ways: served by openjip itself (as a site serves it);
   and from :mod:`viewer_front` (a loopback origin serving the build with openjip's app-config,
   ``/dicom-web/`` reverse-proxied) over openjip and over Orthanc — the like-for-like pair, as
   Orthanc's ServeFolders cannot serve OHIF's client-side routes.

Everything runs inside one private network namespace (Orthanc listens on every interface).
Usage: ``.venv/bin/python bench/viewer.py [--repeat 5]``; figures go to
``bench/results/viewer.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pydicom
from query import Peer, wait_for_http

from ingest import DCMTK_ENV, LOOPBACK_UP, ORTHANC, VENV_BIN, versions
from openjip.config import Settings
from openjip.index import open_index
from openjip.ingest import Ingestor
from openjip.phantom import write_ct_series
from openjip.storage import open_store

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data" / "viewer"
RESULTS = BENCH_DIR / "results" / "viewer.json"
IN_NAMESPACE_FLAG = "--in-namespace"
WEB_PORT, ORTHANC_HTTP, ORTHANC_DICOM, FRONT_PORT = 8042, 8043, 4242, 8044
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
CONNECTIONS = 6
VIEWER = Path(os.environ.get("OPENJIP_WEB__VIEWER_PATH", "~/.openjip/viewer")).expanduser()


def study_files() -> tuple[list[Path], list[Path]]:
    """(the 500-slice 512² series, the 500-slice 256² series) of one study, written once."""
    big, small = DATA_DIR / "ct-512", DATA_DIR / "ct-256"
    if not (DATA_DIR / "complete").exists():
        write_ct_series(big, slices=500, rows=512, columns=512, patient_id="BENCH", series_number=1)
        write_ct_series(
            small, slices=500, rows=256, columns=256, patient_id="BENCH", series_number=2
        )
        (DATA_DIR / "complete").touch()
    return sorted(big.iterdir()), sorted(small.iterdir())


def load_openjip(home: Path, files: list[Path]) -> None:
    settings = Settings(home=home)
    index = open_index(settings)
    ingestor = Ingestor(open_store(settings), index)
    for path in files:
        ingestor.ingest_file(path, source_ae="BENCH")
    index.close()


def start_orthanc(work: Path, files: list[Path]) -> Peer:
    config = {
        "Name": "openjip-viewer-bench",
        "StorageDirectory": str(work / "storage"),
        "IndexDirectory": str(work / "index"),
        "DicomPort": ORTHANC_DICOM,
        "HttpPort": ORTHANC_HTTP,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (work / "orthanc.json").write_text(json.dumps(config))
    peer = Peer([ORTHANC, str(work / "orthanc.json")], DCMTK_ENV, work / "orthanc.log")
    wait_for_http(ORTHANC_HTTP, "/system")
    with httpx.Client(base_url=f"http://127.0.0.1:{ORTHANC_HTTP}", timeout=60) as http:
        for path in files:
            http.post("/instances", content=path.read_bytes()).raise_for_status()
    return peer


def timed(action: Callable[[], int], repeat: int) -> dict[str, Any]:
    """Median and each wall time (ms) of ``repeat`` runs after one warm-up; bytes of the last."""
    action()
    samples, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        size = action()
        samples.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(samples), 1),
            "samples_ms": [round(s, 1) for s in samples], "bytes": size}  # fmt: skip


def get(client: httpx.Client, url: str, headers: dict[str, str]) -> httpx.Response:
    """GET, once more if the server had closed the kept-alive connection (as browsers retry an
    idempotent request then; Orthanc closes connections idle for HttpRequestTimeout)."""
    try:
        return client.get(url, headers=headers)
    except httpx.RemoteProtocolError:
        return client.get(url, headers=headers)


def measure(base: str, study: str, instances: list[tuple[str, str]], repeat: int) -> dict[str, Any]:
    clients = [httpx.Client(base_url=base, timeout=120) for _ in range(CONNECTIONS)]

    def metadata(parse: bool) -> Callable[[], int]:
        def fetch() -> int:
            answer = get(
                clients[0], f"/studies/{study}/metadata", {"Accept": "application/dicom+json"}
            )
            answer.raise_for_status()
            if parse and (count := len(answer.json())) != 1000:
                raise RuntimeError(f"{base}: metadata of {count} instances")
            return len(answer.content)

        return fetch

    def frames_over(connection: int) -> int:
        """Frames of every CONNECTIONS-th instance, one after another on one connection."""
        size = 0
        for series, sop in instances[connection::CONNECTIONS]:
            url = f"/studies/{study}/series/{series}/instances/{sop}/frames/1"
            answer = get(clients[connection], url, {"Accept": FRAME_ACCEPT})
            answer.raise_for_status()
            size += len(answer.content)
        return size

    def frames() -> int:
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            return sum(pool.map(frames_over, range(CONNECTIONS)))

    try:
        return {"study_metadata_1000": timed(metadata(parse=False), repeat),
                "study_metadata_1000_parsed": timed(metadata(parse=True), repeat),
                "frames_500_slices_512": timed(frames, repeat)}  # fmt: skip
    finally:
        for client in clients:
            client.close()


def ohif_over_front(work: Path, peer: str, backend: str, study: str, repeat: int) -> dict[str, Any]:
    """First image of OHIF served by :mod:`viewer_front` with DICOMweb proxied to ``backend``."""
    command = [sys.executable, str(BENCH_DIR / "viewer_front.py"), "--port", str(FRONT_PORT),
               "--backend", backend, "--viewer", str(VIEWER)]  # fmt: skip
    front = Peer(command, dict(os.environ), work / f"front-{peer}.log")
    try:
        wait_for_http(FRONT_PORT, "/healthz")
        return first_images(f"http://127.0.0.1:{FRONT_PORT}", study, repeat)
    finally:
        front.stop()


def first_images(base: str, study: str, repeat: int) -> dict[str, Any]:
    """Median and each of ``repeat`` first-image times (s) of OHIF at ``base``."""
    samples = [first_image_in_ohif(base, study) for _ in range(repeat)]
    return {"median_s": round(statistics.median(samples), 2), "samples_s": samples}


def first_image_in_ohif(base: str, study: str) -> float:
    """Seconds from navigation until OHIF's viewport shows the CT (headless Chromium)."""
    sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "viewer"))
    from browser import (
        VIEWPORT,
        element_pixels,
        shows_an_image,
        skip_tour,
        start_chromium,
        wait_for,
    )

    def drawn() -> bool:
        skip_tour(driver)  # OHIF's first-visit tour dims the page until dismissed
        return shows_an_image(element_pixels(driver, VIEWPORT))

    driver = start_chromium()
    try:
        started = time.monotonic()
        driver.get(f"{base}/viewer/viewer?StudyInstanceUIDs={study}")
        wait_for(drawn, 120, "the first image")
        return round(time.monotonic() - started, 2)
    finally:
        driver.quit()


def run_in_namespace(args: argparse.Namespace) -> dict[str, Any]:
    big, small = study_files()
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in big]
    study = str(headers[0].StudyInstanceUID)
    instances = [(str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)) for ds in headers]
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "machine": {"cpus": os.cpu_count(), "load_average_before": os.getloadavg()},
        "data": {"study_instances": len(big) + len(small), "frames_series": "500 x 512² CT",
                 "transfer_syntax": "Explicit VR Little Endian"},
        "method": {"metadata": "GET /studies/{uid}/metadata, one connection, until the body is"
                               " read (httpx); _parsed adds json.loads of it on the client",
                   "frames": f"GET .../frames/1 of each of 500 instances over {CONNECTIONS}"
                             " kept-alive connections (one thread each), transfer-syntax=*",
                   "ohif": "fresh headless Chromium per round until the viewport shows the CT;"
                           " openjip's own /viewer/, and viewer_front.py (same build and"
                           " app-config, /dicom-web/ proxied) over openjip and over Orthanc",
                   "repeat": args.repeat, "ohif_repeat": args.ohif_repeat},
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="openjip-viewer-bench-") as tmp:
        work = Path(tmp)
        load_openjip(work / "openjip", big + small)
        env = {**os.environ, "OPENJIP_HOME": str(work / "openjip"),
               "OPENJIP_WEB__PORT": str(WEB_PORT), "OPENJIP_WEB__VIEWER_PATH": str(VIEWER),
               "OPENJIP_LOG_LEVEL": "warning",
               # Anonymous on loopback (inside the namespace), as Orthanc runs without auth.
               "OPENJIP_ACCESS__ALLOW_ANONYMOUS": "true",
               "OPENJIP_ACCESS__ANONYMOUS_ROLE": "admin"}  # fmt: skip
        web = Peer([str(VENV_BIN / "openjip"), "web"], env, work / "web.log")
        try:
            wait_for_http(WEB_PORT, "/healthz")
            base = f"http://127.0.0.1:{WEB_PORT}"
            report["openjip"] = measure(f"{base}/dicom-web", study, instances, args.repeat)
            report["openjip"]["ohif_first_image"] = first_images(base, study, args.ohif_repeat)
            report["openjip"]["ohif_first_image_via_front"] = ohif_over_front(
                work, "openjip", f"{base}/dicom-web", study, args.ohif_repeat
            )
        finally:
            web.stop()
        orthanc = start_orthanc(work, big + small)
        try:
            base = f"http://127.0.0.1:{ORTHANC_HTTP}/dicom-web"
            report["orthanc"] = measure(base, study, instances, args.repeat)
            report["orthanc"]["ohif_first_image_via_front"] = ohif_over_front(
                work, "orthanc", base, study, args.ohif_repeat
            )
        finally:
            orthanc.stop()
    report["machine"]["load_average_after"] = os.getloadavg()
    ours, theirs = report["openjip"], report["orthanc"]
    report["targets"] = {
        name: {
            "openjip_over_orthanc": round(ours[name]["median_ms"] / theirs[name]["median_ms"], 2)
        }
        for name in ("study_metadata_1000", "study_metadata_1000_parsed", "frames_500_slices_512")
    }
    report["targets"]["study_metadata_1000"]["le_1s"] = (
        ours["study_metadata_1000"]["median_ms"] <= 1000
    )
    front = "ohif_first_image_via_front"
    report["targets"][front] = {
        "openjip_over_orthanc": round(ours[front]["median_s"] / theirs[front]["median_s"], 2)
    }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds of each measurement")
    parser.add_argument("--ohif-repeat", type=int, default=3, help="rounds of each OHIF timing")
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
    print(json.dumps({k: report[k] for k in ("openjip", "orthanc", "targets")}, indent=2))
    print(f"\nwritten to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
