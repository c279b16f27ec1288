"""Patient data at rest and the environment of analysis steps: after a real ingest by every
path (C-STORE, STOW-RS, series-complete events, the index and its WAL, the access audit, step
results), nothing under OPENJIP_HOME is readable by anyone but its owner; an operator that
prints its environment shows no secret of Airflow or of the site."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from pydicom.data import get_testdata_file

from openjip.access.environment import STEP_ENV_ALLOWED
from openjip.config import Settings
from openjip.runner.kubernetes import GRANT_ENV, WEB_URL_ENV
from openjip.sdk.contract import INPUT_ENV, OPERATOR_ENV, OUTPUT_ENV, PARAMS_ENV
from openjip.web.dicomweb.multipart import write_multipart

CT = Path(str(get_testdata_file("CT_small.dcm")))
MR = Path(str(get_testdata_file("MR_small.dcm")))
SC = Path(str(get_testdata_file("SC_rgb.dcm")))

SECRETS = {
    "AIRFLOW__API_AUTH__JWT_SECRET": "jwt-secret-value-0123456789",
    "AIRFLOW__API__SECRET_KEY": "api-secret-value-0123456789",
    "AIRFLOW__CORE__FERNET_KEY": "fernet-key-value-0123456789",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:db-password-0123@db/airflow",
    "OPENJIP_STORAGE__S3_SECRET_KEY": "s3-secret-value-0123456789",
    "OPENJIP_INDEX__OPENSEARCH_PASSWORD": "opensearch-password-0123456789",
    "OPENJIP_ACCESS__OIDC_CLIENT_SECRET": "oidc-secret-value-0123456789",
    "OPENJIP_AIRFLOW__PASSWORD": "site-password-value-0123456789",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value-0123456789",
}


def _start_site(home: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {
        **os.environ,
        "OPENJIP_HOME": str(home),
        "OPENJIP_RECEIVER__PORT": "0",
        "OPENJIP_RECEIVER__WORKERS": "2",
        "OPENJIP_RECEIVER__SERIES_IDLE_SECONDS": "0.5",
        "OPENJIP_RECEIVER__SWEEP_INTERVAL_SECONDS": "0.2",
        "OPENJIP_WEB__PORT": "0",
        "OPENJIP_AIRFLOW__ENABLED": "false",
    }
    site = subprocess.Popen(
        [str(Path(sys.executable).with_name("openjip")), "site", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert site.stdout is not None
    printed: dict[str, str] = {}
    patterns = {
        "password": r"first admin created: user admin  password (\S+)",
        "dicom_port": r"\s+DICOM\s+\S+:(\d+)",
        "web": r"\s+web\s+(http://\S+)/healthz",
    }
    for line in site.stdout:
        for name, pattern in patterns.items():
            if match := re.match(pattern, line):
                printed[name] = match[1]
        if printed.keys() == patterns.keys():
            return site, printed
    raise AssertionError(f"site up ended with {site.wait()}")


def _stow(web: str, admin: tuple[str, str], path: Path) -> httpx.Response:
    boundary = uuid.uuid4().hex
    body = b"".join(write_multipart([("application/dicom", [path.read_bytes()])], boundary))
    return httpx.post(
        f"{web}/dicom-web/studies",
        content=body,
        auth=admin,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
        timeout=30,
    )


def _readable_by_others(home: Path) -> list[str]:
    exposed = []
    for path in [home, *home.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        if mode & 0o077:
            exposed.append(f"{oct(mode & 0o777)} {path.relative_to(home.parent)}")
    return exposed


@pytest.mark.timeout(300)
def test_no_file_readable_by_others_after_ingest_by_every_path(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)  # as an older openjip left it
    site, printed = _start_site(home)
    try:
        stored = subprocess.run(
            ["/usr/bin/storescu", "-aec", "OPENJIP", "127.0.0.1", printed["dicom_port"], str(CT)],
            capture_output=True,
            text=True,
            env={**os.environ, "TCP_NODELAY": "1"},
            timeout=60,
        )
        assert stored.returncode == 0, stored.stdout + stored.stderr
        answer = _stow(printed["web"], ("admin", printed["password"]), MR)
        assert answer.status_code == 200, answer.text
        events = home / "events" / "series_complete.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            not events.exists() or len(events.read_text().splitlines()) < 2
        ):
            time.sleep(0.2)
        assert len(events.read_text().splitlines()) == 2
    finally:
        site.send_signal(signal.SIGINT)
        site.wait(timeout=60)
    _publish_a_result(home)
    assert (home / "index.sqlite3").exists() and list(home.glob("index.sqlite3*"))
    assert (home / "audit" / "access.jsonl").exists()
    assert list((home / "objects" / "runs").rglob("*"))
    assert _readable_by_others(home) == []


def _publish_a_result(home: Path) -> None:
    """A step's outputs (a JSON and a DICOM file) published as the local runner does, in this
    test's process (default umask): the store's and index's own modes keep them private."""
    from openjip.index import open_index
    from openjip.runner.base import StepRequest
    from openjip.runner.local import LocalStepRunner
    from openjip.storage import open_store

    settings = Settings(home=home)
    index = open_index(settings)
    try:
        output = home.parent / "output"
        output.mkdir()
        (output / "volume.json").write_text('{"ml": 1.0}')
        shutil.copy(SC, output / "result.dcm")
        request = StepRequest("wf", "run-1", "measure", "probe@0.1.0", ["1.2.3"])
        LocalStepRunner(open_store(settings), index, home / "work").publish_outputs(request, output)
    finally:
        index.close()


def test_operator_printing_its_environment_shows_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openjip.operators import load_operator, run_operator_locally

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    folder = tmp_path / "op"
    folder.mkdir()
    manifest = {
        "name": "printenv",
        "version": "0.1.0",
        "description": "Writes its environment.",
        "image": "registry.example.org/printenv:0.1.0",
        "command": ["python", "main.py"],
        "input": {"kind": "dicom-series"},
        "output": {"kind": "json"},
    }
    (folder / "operator.yaml").write_text(yaml.safe_dump(manifest))
    (folder / "main.py").write_text(
        textwrap.dedent(
            """
            import json, os
            out = os.environ["OPENJIP_STEP_OUTPUT"]
            with open(os.path.join(out, "env.json"), "w") as f:
                json.dump(dict(os.environ), f)
            print("\\n".join(f"{k}={v}" for k, v in os.environ.items()))
            """
        )
    )
    input_dir, output_dir = tmp_path / "input", tmp_path / "output"
    input_dir.mkdir()
    output_dir.mkdir()
    result = run_operator_locally(load_operator(folder), input_dir, output_dir, {})
    seen = json.loads((output_dir / "env.json").read_text())
    printed = "\n".join(result.log_tail) + json.dumps(seen)
    for name, value in SECRETS.items():
        assert name not in seen
        assert value not in printed
    contract = {INPUT_ENV, OUTPUT_ENV, PARAMS_ENV, OPERATOR_ENV, "PYTHONUNBUFFERED"}
    unexpected = set(seen) - STEP_ENV_ALLOWED - contract
    assert {name for name in unexpected if not name.startswith("LC_")} == set()
    assert seen[OUTPUT_ENV] == str(output_dir)
    assert "PATH" in seen


def test_analysis_pod_carries_no_secret_of_airflow_or_the_site(
    openjip_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's container gets its contract only; the platform's fetch and publish
    containers get the web service's URL and their step grant, no store or index credential
    (not even by Secret reference), nothing of Airflow's or the identity provider's."""
    from openjip.runner import StepRequest
    from openjip.runner.kubernetes import AnalysisPod

    for name, value in SECRETS.items():
        if name != "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN":  # Airflow in this process would use it
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENJIP_MODE", "kubernetes")
    monkeypatch.setenv("OPENJIP_STORAGE__BACKEND", "s3")
    grant_key = "the key of step grants, never in a pod"
    monkeypatch.setenv("OPENJIP_ACCESS__STEP_TOKEN_SECRET", grant_key)
    request = StepRequest("wf", "run-1", "segment", "threshold-segmentation@0.1.0", ["1.2.3"])
    pod = AnalysisPod(Settings()).manifest(request)
    assert not [value for value in [*SECRETS.values(), grant_key] if value in json.dumps(pod)]
    assert "secretKeyRef" not in json.dumps(pod)
    containers = {
        c["name"]: c for c in [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]
    }
    step = {item["name"] for item in containers["step"]["env"]}
    assert step == {INPUT_ENV, OUTPUT_ENV, PARAMS_ENV, OPERATOR_ENV, "HOME"}
    for container in containers.values():
        names = {item["name"] for item in container.get("env", [])}
        assert not {n for n in names if n.startswith(("AIRFLOW", "OPENJIP_ACCESS", "AWS_"))}
        assert names <= {
            INPUT_ENV,
            OUTPUT_ENV,
            PARAMS_ENV,
            OPERATOR_ENV,
            "HOME",
            GRANT_ENV,
            WEB_URL_ENV,
        }
