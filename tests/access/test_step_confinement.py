"""A local analysis step runs confined (Landlock): with the real local runner, store and index,
a step that tries to reach what is not its own — another series' objects in the store, the
index, the users' file, the Airflow worker's environment, the site's web port — is refused,
while its own staged inputs and its output folder work."""

from __future__ import annotations

import json
import os
import socket
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from openjip.access import UserStore
from openjip.access.confinement import confined_command
from openjip.config import Settings
from openjip.index import Query, open_index
from openjip.runner import StepFailed, StepRequest, open_runner
from openjip.runner.local import LocalStepRunner
from openjip.storage import open_store

PROBE = """\
name: probe
version: 1.0.0
description: Tries to reach what a step should not, and says what it reached.
image: example.org/probe:1.0.0
command: [python, main.py]
input: {kind: dicom-series}
output: {kind: json}
params:
  targets: {type: string, default: "{}"}
"""

PROBE_MAIN = """\
import json, os, socket, tempfile
from openjip import sdk

def attempt(kind, target):
    try:
        if kind == "read":
            with open(target, "rb") as handle:
                handle.read(1)
        elif kind == "list":
            os.listdir(target)
        elif kind == "write":
            with open(target, "w") as handle:
                handle.write("x")
        elif kind == "connect":
            socket.create_connection(("127.0.0.1", int(target)), timeout=5).close()
        return "reached"
    except OSError as error:
        return type(error).__name__

def main():
    targets = json.loads(sdk.params()["targets"])
    seen = {name: attempt(kind, target) for name, (kind, target) in targets.items()}
    [item] = list(sdk.inputs())
    seen["own inputs"] = len(item.files())
    with open(os.path.join(tempfile.gettempdir(), "scratch.txt"), "w") as handle:
        handle.write("scratch is writable")
    (item.output_dir() / "seen.json").write_text(json.dumps(seen))

sdk.run(main)
"""


@pytest.fixture
def probe(openjip_home: Path) -> str:
    folder = openjip_home / "operators" / "probe"
    folder.mkdir(parents=True)
    (folder / "operator.yaml").write_text(PROBE)
    (folder / "main.py").write_text(textwrap.dedent(PROBE_MAIN))
    return "probe@1.0.0"


@pytest.fixture
def own(ingest: Callable[[list[Path]], list[str]], ct_phantom: list[Path]) -> str:
    """The series the probe runs on."""
    [uid] = ingest(ct_phantom)
    return uid


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on loopback that accepts connections (as the site's web service would)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def _run(settings: Settings, operator: str, series: str, targets: dict[str, list[str]]) -> dict:
    request = StepRequest(
        dag_id="probe",
        run_id="manual__1",
        step="probe",
        operator=operator,
        series_uids=[series],
        params={"targets": json.dumps(targets)},
    )
    outcome = open_runner(settings).run(request)
    [key] = outcome.output_keys
    seen: dict = json.loads(open_store(settings).get(key))
    return seen


def test_a_step_reaches_its_inputs_and_nothing_else_of_the_site(
    settings: Settings,
    ingest: Callable[[list[Path]], list[str]],
    ct_phantom: list[Path],
    probe: str,
    listener: int,
) -> None:
    from pydicom.data import get_testdata_file

    [own] = ingest(ct_phantom)
    [other] = ingest([Path(get_testdata_file("CT_small.dcm"))])
    index = open_index(settings)
    [other_study] = {
        s.StudyInstanceUID for s in index.find_series(Query(SeriesInstanceUID=[other]))
    }
    assert other_study not in {
        s.StudyInstanceUID for s in index.find_series(Query(SeriesInstanceUID=[own]))
    }
    index.set_study_projects(other_study, ["p2"], replace=True)
    [other_instance] = index.find_instances(Query(SeriesInstanceUID=[other]))
    index.close()
    UserStore(settings.access_dir).add("alice", "a long password here", "researcher", ["p1"])
    store_root = settings.storage_path
    other_object = store_root / other_instance.object_key
    own_object = next(store_root.rglob(f"dicom/*/{own}/*.dcm"))
    worker_environ = f"/proc/{os.getpid()}/environ"
    assert Path(worker_environ).read_bytes()  # the test itself (the worker) may read it

    seen = _run(
        settings,
        probe,
        own,
        {
            "another project's object": ["read", str(other_object)],
            "its own series in the store": ["read", str(own_object)],
            "the store": ["list", str(store_root)],
            "the index": ["read", str(next(settings.home_dir.rglob("*.sqlite3")))],
            "the users": ["read", str(settings.access_dir / "users.json")],
            "OPENJIP_HOME": ["list", str(settings.home_dir)],
            "a file beside its work folder": ["write", str(settings.home_dir / "work" / "x")],
            "the worker's environment": ["read", worker_environ],
            "the site's web port": ["connect", str(listener)],
        },
    )

    assert seen.pop("own inputs") == len(ct_phantom)
    assert seen == {
        "another project's object": "PermissionError",
        "its own series in the store": "PermissionError",
        "the store": "PermissionError",
        "the index": "PermissionError",
        "the users": "PermissionError",
        "OPENJIP_HOME": "PermissionError",
        "a file beside its work folder": "PermissionError",
        "the worker's environment": "PermissionError",
        "the site's web port": "PermissionError",
    }
    assert not (settings.home_dir / "work" / "x").exists()


def test_without_confinement_the_same_step_reaches_the_store(
    settings: Settings, own: str, probe: str
) -> None:
    """The probe can fail: with ``step_confinement=off`` it reads what it was refused above."""
    unconfined = settings.model_copy(
        update={"airflow": settings.airflow.model_copy(update={"step_confinement": "off"})}
    )
    runner = open_runner(unconfined)
    assert isinstance(runner, LocalStepRunner) and runner.private is None
    store_object = next(settings.storage_path.rglob("*.dcm"))
    seen = _run(unconfined, probe, own, {"the store": ["read", str(store_object)]})
    assert seen["the store"] == "reached"


def test_a_home_inside_a_readable_system_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a step may read /etc, which holds /etc/openjip"):
        confined_command(["true"], read=[], write=[tmp_path], private=Path("/etc/openjip"))


def test_the_refusal_reaches_the_step_as_a_clear_failure(
    settings: Settings, own: str, probe: str
) -> None:
    runner = open_runner(settings)
    assert isinstance(runner, LocalStepRunner)
    runner.private = Path("/usr/share/openjip")
    request = StepRequest("probe", "manual__1", "probe", probe, [own])
    with pytest.raises(StepFailed, match="cannot confine the step: a step may read /usr"):
        runner.run(request)
