"""Orthanc as the client: it queries openjip over C-FIND and pulls a study into itself with
C-MOVE, driven through its REST API (/modalities/{id}/query, /queries/{id}/retrieve).

Orthanc listens on every interface, so it, the openjip receiver and curl share a private
network namespace."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from qr_peers import NetNamespace, dataset_bytes

ORTHANC_HTTP = "http://127.0.0.1:8042"


def rest(netns: NetNamespace, method: str, path: str, body: Any = None) -> Any:
    """Call Orthanc's REST API from inside the namespace; the decoded JSON answer."""
    args = ["curl", "-sS", "--fail-with-body", "-X", method, f"{ORTHANC_HTTP}{path}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    run = netns.run(*args, timeout=120)
    assert run.returncode == 0, f"{method} {path}: {run.stdout} {run.stderr}"
    return json.loads(run.stdout)


def start_orthanc(netns: NetNamespace, work: Path) -> None:
    config = {
        "Name": "orthanc-test",
        "StorageDirectory": str(work / "storage"),
        "IndexDirectory": str(work / "storage"),
        "DicomAet": "ORTHANC",
        "DicomPort": 4242,
        "HttpPort": 8042,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {"openjip": ["OPENJIP", "127.0.0.1", 11112]},
        "DicomAlwaysAllowStore": True,
        "Plugins": [],
    }
    (work / "orthanc.json").write_text(json.dumps(config))
    netns.start("/usr/sbin/Orthanc", str(work / "orthanc.json"), log=work / "orthanc.log")
    deadline = time.monotonic() + 60
    while netns.run("curl", "-sf", f"{ORTHANC_HTTP}/system").returncode != 0:
        assert time.monotonic() < deadline, (work / "orthanc.log").read_text()[-3000:]
        time.sleep(0.3)


def test_orthanc_queries_and_retrieves_a_study(netns, settings, site_data, tmp_path) -> None:
    env = {
        "OPENJIP_HOME": os.environ["OPENJIP_HOME"],
        "OPENJIP_RECEIVER__PORT": "11112",
        "OPENJIP_RECEIVER__WORKERS": "1",
        "OPENJIP_RECEIVER__MOVE_DESTINATIONS": json.dumps(
            {"ORTHANC": {"host": "127.0.0.1", "port": 4242}}
        ),
    }
    netns.start(sys.executable, "-m", "openjip.receiver", log=tmp_path / "receiver.log", env=env)
    start_orthanc(netns, tmp_path)
    netns.wait_for_echo(11112, "OPENJIP")
    assert rest(netns, "POST", "/modalities/openjip/echo", {}) == {}

    query = rest(
        netns,
        "POST",
        "/modalities/openjip/query",
        {"Level": "Study", "Query": {"PatientName": "PHAN*", "StudyDate": "20200101-"}},
    )
    answers = rest(netns, "GET", f"/queries/{query['ID']}/answers?expand&simplify")
    assert [answer["StudyInstanceUID"] for answer in answers] == [site_data.phantom_study]
    assert answers[0]["PatientID"] == "PHANTOM"

    series = rest(
        netns,
        "POST",
        "/modalities/openjip/query",
        {"Level": "Series", "Query": {"StudyInstanceUID": site_data.phantom_study, "Modality": ""}},
    )
    series_answers = rest(netns, "GET", f"/queries/{series['ID']}/answers?expand&simplify")
    assert [answer["SeriesInstanceUID"] for answer in series_answers] == [site_data.phantom_series]

    rest(
        netns,
        "POST",
        f"/queries/{query['ID']}/retrieve",
        {"TargetAet": "ORTHANC", "Synchronous": True},
    )
    studies = rest(netns, "GET", "/studies?expand")
    assert [study["MainDicomTags"]["StudyInstanceUID"] for study in studies] == [
        site_data.phantom_study
    ]
    instances = rest(netns, "GET", "/instances?expand")
    assert len(instances) == 24
    # Orthanc keeps what it received: the dataset bytes are the ones openjip stored.
    first = instances[0]
    copy = tmp_path / "from-orthanc.dcm"
    run = netns.run(
        "curl", "-sf", "-o", str(copy), f"{ORTHANC_HTTP}/instances/{first['ID']}/file"
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    original = site_data.files[first["MainDicomTags"]["SOPInstanceUID"]]
    assert dataset_bytes(copy.read_bytes()) == dataset_bytes(original.read_bytes())
