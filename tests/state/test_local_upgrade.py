"""Local upgrade in place: a home made by openjip 0.1.0 (commit 14f6e6b, run from its own
virtual environment) is opened by the current code with no `index rebuild`: the CT series, the
step output, the federation identity and the approved peer workflow are there, and a new series
triggers the approved workflow (a recorded run request in the trigger queue; no live Airflow).
Then 0.1.0 again (a roll back) refuses the migrated index with both versions, changing nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path
from typing import Any

from site_contents import ct_files, send, wait_until

from openjip.access import UserStore
from openjip.airflow.client import AirflowUnavailable
from openjip.airflow.series_arrival import QUEUE_FILE, RunRequestQueue, SeriesArrivalRuns
from openjip.config import Settings
from openjip.config.settings import ReceiverSettings
from openjip.federation.exchange import Exchange
from openjip.index.base import Query
from openjip.index.sqlite import SQLiteIndex
from openjip.storage.local import LocalObjectStore

REPO = Path(__file__).resolve().parents[2]
PREVIOUS_RELEASE = "14f6e6bd4f8c593031ee6c169d05e646e69ec19f"  # v0.1.0


def previous_python(tmp_path: Path) -> tuple[Path, Path]:
    """A venv running the previous release's source with today's dependencies (offline): the
    commit's tree from git, and a .pth that puts it before the current venv's site-packages."""
    found = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"], check=False
    )
    assert found.returncode == 0, f"commit {PREVIOUS_RELEASE} (v0.1.0) is not in this clone"
    source = tmp_path / "openjip-0.1.0"
    source.mkdir()
    archive = tmp_path / "openjip-0.1.0.tar"
    subprocess.run(
        ["git", "-C", str(REPO), "archive", "-o", str(archive), PREVIOUS_RELEASE], check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(source, filter="data")
    venv = tmp_path / "venv-0.1.0"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Only the path: the current venv's own .pth files (its editable openjip) are not read.
    current = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "openjip-0.1.0.pth").write_text(f"{source / 'src'}\n{current}\n")
    return python, source


def test_a_home_of_the_previous_release_opens_with_everything_in_it(
    settings: Settings, tmp_path: Path
) -> None:
    python, source = previous_python(tmp_path)
    home = settings.home_dir
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OPENJIP_")}
    made = subprocess.run(
        [
            str(python),
            str(Path(__file__).with_name("previous_site.py")),
            str(home),
            str(tmp_path / "peer"),
            str(source / "dags" / "workflows" / "ct-body-mask.yaml"),
        ],
        env={**environment, "OPENJIP_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    old: dict[str, Any] = json.loads(made.stdout.splitlines()[-1])
    assert old["openjip"] == "0.1.0" and old["code"].startswith(str(source))

    index = SQLiteIndex(settings.index_path)
    try:
        assert [s.SeriesInstanceUID for s in index.find_series(Query())] == [old["series"]]
        assert len(index.find_instances(Query())) == 6
    finally:
        index.close()
    store = LocalObjectStore(settings.storage_path)
    assert old["outputs"] and all(store.head(key) is not None for key in old["outputs"])
    exchange = Exchange(home, settings.federation)
    assert exchange.identity.site_id == old["site_id"]
    assert Path(old["approved"]).is_file() and Path(old["approved"]).parent == home / "workflows"
    assert UserStore(settings.access_dir).list() == []  # 0.1.0 had no users
    logged = [json.loads(line) for line in (home / "state" / "migrations.jsonl").open()]
    assert {(e["store"], e["from"], e["to"]) for e in logged} == {
        ("federation", None, 1),
        ("users", None, 1),
    }

    triggers = SeriesArrivalRuns(settings, client_factory=unreachable_airflow)
    site = settings.model_copy(
        update={
            "receiver": ReceiverSettings(
                port=0, workers=1, series_idle_seconds=0.5, sweep_interval_seconds=0.1
            )
        }
    )
    from openjip.site import ReceiverComponent

    receiver = ReceiverComponent(site, listeners=[triggers])  # as `openjip receiver` builds it
    receiver.start()
    try:
        # The index migrated itself (1 -> 2) when opened above; the site's assembly logged it.
        logged = [json.loads(line) for line in (home / "state" / "migrations.jsonl").open()]
        assert ("index", 1, 2) in {(e["store"], e["from"], e["to"]) for e in logged}
        send(receiver.service.address, ct_files(tmp_path / "new-ct", 3, series_number=2), [])
        queue = RunRequestQueue(home / QUEUE_FILE)
        wait_until(lambda: "peer-body-mask" in {run.dag_id for run in queue.all()})
        queue.close()
    finally:
        receiver.stop()
        triggers.stop()

    # Rolling back: 0.1.0 (index schema 1) refuses the migrated index, naming both versions,
    # and leaves it as it is.
    before = hashlib.sha256(settings.index_path.read_bytes()).hexdigest()
    listed = subprocess.run(
        [str(python), "-c", "from openjip.cli.main import app; app()", "query", "series"],
        env={**environment, "OPENJIP_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 1
    assert "index schema version 2, this openjip uses 1" in listed.stdout + listed.stderr
    assert hashlib.sha256(settings.index_path.read_bytes()).hexdigest() == before


def unreachable_airflow() -> Any:
    raise AirflowUnavailable("no Airflow in this test: run requests stay in the queue")
