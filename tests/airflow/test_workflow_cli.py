"""``openjip workflow trigger`` and ``runs`` against the running local Airflow: the run starts with
the series and params given, and finishes with the NIfTI under runs/."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openjip.cli.main import app
from openjip.config import Settings
from openjip.index import open_index
from openjip.ingest import Ingestor
from openjip.storage import open_store

runner = CliRunner()


def test_trigger_from_the_command_line_and_list_runs(
    site_settings: Settings, ct_phantom: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENJIP_AIRFLOW__PORT", str(site_settings.airflow.port))
    store, index = open_store(site_settings), open_index(site_settings)
    # The session's Airflow site is shared: another test may have stored the phantom already
    # (received over DIMSE, with other file meta bytes); this test only needs it there.
    ingestor = Ingestor(store, index, overwrite=True)
    uid = ""
    for path in ct_phantom:
        uid = ingestor.ingest_file(path, source_ae="TEST").record.SeriesInstanceUID
    index.close()

    trigger = ["workflow", "trigger", "convert-to-nifti", "--series", uid, "--run-id", "cli-test"]
    result = runner.invoke(app, [*trigger, "--param", "compress=false", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["conf"] == {"series": [uid], "compress": False}

    deadline = time.monotonic() + 240
    state = ""
    while time.monotonic() < deadline and state not in ("success", "failed"):
        listed = runner.invoke(app, ["workflow", "runs", "convert-to-nifti", "--json"])
        assert listed.exit_code == 0, listed.output
        [run] = [run for run in json.loads(listed.stdout) if run["dag_run_id"] == "cli-test"]
        state = run["state"]
        time.sleep(1)
    assert state == "success"
    keys = [info.key for info in store.list(f"runs/convert-to-nifti/cli-test/convert/{uid}/")]
    assert any(key.endswith(".nii") for key in keys), keys

    again = runner.invoke(app, trigger)
    assert again.exit_code == 1
    assert "409" in again.output


def test_the_cli_calls_airflow_as_the_user_of_its_environment(
    site_settings: Settings, ct_phantom: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials from the environment (OPENJIP_AIRFLOW__USERNAME/PASSWORD) make the command
    line act as that user, with that user's role: a viewer lists runs but may not start one."""
    from openjip.access import UserStore

    users = UserStore(site_settings.access_dir)
    if users.get("vivi") is None:
        users.add("vivi", "a viewer's password", "viewer", ["p1"])
    monkeypatch.setenv("OPENJIP_AIRFLOW__PORT", str(site_settings.airflow.port))
    index = open_index(site_settings)
    uid = (
        Ingestor(open_store(site_settings), index, overwrite=True)
        .ingest_file(ct_phantom[0], source_ae="TEST")
        .record.SeriesInstanceUID
    )
    index.close()
    monkeypatch.setenv("OPENJIP_AIRFLOW__USERNAME", "vivi")
    monkeypatch.setenv("OPENJIP_AIRFLOW__PASSWORD", "a viewer's password")
    listed = runner.invoke(app, ["workflow", "runs", "convert-to-nifti", "--json"])
    assert listed.exit_code == 0, listed.output
    trigger = ["workflow", "trigger", "convert-to-nifti", "--series", uid, "--run-id", "vivi"]
    refused = runner.invoke(app, trigger)
    assert refused.exit_code == 1, refused.output
    assert "Airflow refused the run" in refused.output and "403" in refused.output
    monkeypatch.setenv("OPENJIP_AIRFLOW__PASSWORD", "not the password")
    wrong = runner.invoke(app, ["workflow", "runs", "convert-to-nifti"])
    assert wrong.exit_code != 0
    assert "refused" in wrong.output and "Traceback" not in wrong.output
