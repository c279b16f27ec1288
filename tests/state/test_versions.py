"""Schema versions: older code on newer state refuses, naming both versions, and changes nothing;
older state is migrated forward and the step logged."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from openjip import __version__
from openjip.access import UserError, UserStore
from openjip.airflow.series_arrival import QUEUE_FILE, RunRequestQueue
from openjip.cli.main import app
from openjip.config import Settings
from openjip.deid.pseudonyms import site_secret
from openjip.federation.errors import FederationError
from openjip.federation.exchange import Exchange
from openjip.index.base import IndexUnavailable, Query
from openjip.index.sqlite import SQLiteIndex
from openjip.index.sqlite.schema import SCHEMA_VERSION
from openjip.state import versions
from openjip.state.inventory import record_index_migrations
from openjip.state.versions import (
    MIGRATION_LOG,
    STATE_DIR,
    VERSIONS_FILE,
    FileStore,
    StateTooNew,
    ensure_store,
)

runner = CliRunner()


def snapshot(home: Path) -> dict[str, str]:
    """sha256 of every file under ``home`` (SQLite side files left out)."""
    return {
        str(path.relative_to(home)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(home.rglob("*"))
        if path.is_file() and not path.name.endswith(("-wal", "-shm"))
    }


def make_newer(home: Path, store: str) -> None:
    path = home / STATE_DIR / VERSIONS_FILE
    recorded = json.loads(path.read_text())
    path.write_text(json.dumps({**recorded, store: recorded[store] + 1}))


def test_a_new_store_is_versioned_and_logged(settings: Settings) -> None:
    UserStore(settings.access_dir).add("alice", "alice-password", "viewer")
    home = settings.home_dir
    assert json.loads((home / STATE_DIR / VERSIONS_FILE).read_text()) == {"users": 1}
    logged = [json.loads(line) for line in (home / STATE_DIR / "migrations.jsonl").open()]
    assert [(e["store"], e["from"], e["to"], e["openjip"]) for e in logged] == [
        ("users", None, 1, __version__)
    ]


def test_older_state_is_migrated_forward_and_logged(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = settings.home_dir
    ensure_store(home, "users")
    steps: list[Path] = []
    monkeypatch.setitem(versions.STORES, "users", FileStore("users", 2, {1: steps.append}))
    ensure_store(home, "users")
    ensure_store(home, "users")  # once at version 2, nothing more runs
    assert steps == [home]
    assert json.loads((home / STATE_DIR / VERSIONS_FILE).read_text()) == {"users": 2}
    last = json.loads((home / STATE_DIR / "migrations.jsonl").read_text().splitlines()[-1])
    assert (last["store"], last["from"], last["to"]) == ("users", 1, 2)


def test_an_unrecorded_store_is_the_0_1_layout_and_migrated_from_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[Path] = []
    monkeypatch.setitem(versions.STORES, "users", FileStore("users", 2, {1: steps.append}))
    ensure_store(settings.home_dir, "users")
    assert steps == [settings.home_dir]
    log = (settings.home_dir / STATE_DIR / "migrations.jsonl").read_text().splitlines()
    assert [(e["from"], e["to"]) for e in map(json.loads, log)] == [(None, 1), (1, 2)]


def test_older_code_refuses_newer_users_and_changes_nothing(settings: Settings) -> None:
    UserStore(settings.access_dir).add("alice", "alice-password", "viewer")
    make_newer(settings.home_dir, "users")
    before = snapshot(settings.home_dir)
    with pytest.raises(UserError, match="schema version 2, newer than version 1") as error:
        UserStore(settings.access_dir)
    assert f"openjip {__version__}" in str(error.value)
    result = runner.invoke(app, ["user", "list"])
    assert result.exit_code != 0 and "newer than version 1" in result.output
    assert snapshot(settings.home_dir) == before


def test_older_code_refuses_newer_federation_state_and_changes_nothing(settings: Settings) -> None:
    Exchange(settings.home_dir, settings.federation).init("site-a")
    make_newer(settings.home_dir, "federation")
    before = snapshot(settings.home_dir)
    with pytest.raises(FederationError, match="federation state is at schema version 2"):
        Exchange(settings.home_dir, settings.federation)
    assert snapshot(settings.home_dir) == before


def test_older_code_refuses_a_newer_index_and_changes_nothing(settings: Settings) -> None:
    index = SQLiteIndex(settings.index_path)
    index.find_series(Query())
    index.close()
    with sqlite3.connect(settings.index_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = snapshot(settings.home_dir)
    newer: Any = SQLiteIndex(settings.index_path)
    with pytest.raises(IndexUnavailable, match=f"newer than version {SCHEMA_VERSION}"):
        newer.find_series(Query())
    newer.close()
    assert snapshot(settings.home_dir) == before


def test_older_code_refuses_a_newer_trigger_queue_and_changes_nothing(settings: Settings) -> None:
    RunRequestQueue(settings.home_dir / QUEUE_FILE).close()
    make_newer(settings.home_dir, "trigger-queue")
    before = snapshot(settings.home_dir)
    with pytest.raises(StateTooNew, match="trigger-queue state is at schema version 2"):
        RunRequestQueue(settings.home_dir / QUEUE_FILE)
    assert snapshot(settings.home_dir) == before


def test_older_code_refuses_a_newer_deid_secret_and_changes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    secret = site_secret(settings.home_dir, settings.deid_secret_path)
    assert json.loads((settings.home_dir / STATE_DIR / VERSIONS_FILE).read_text()) == {
        "deid-secret": 1
    }
    make_newer(settings.home_dir, "deid-secret")
    before = snapshot(settings.home_dir)
    with pytest.raises(StateTooNew, match="deid-secret state is at schema version 2"):
        site_secret(settings.home_dir, settings.deid_secret_path)
    (tmp_path / "in").mkdir()
    result = runner.invoke(app, ["deidentify", str(tmp_path / "in"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "newer than version 1" in result.output
    assert not (tmp_path / "o").exists()
    assert snapshot(settings.home_dir) == before and len(secret) >= 32


def test_the_index_reports_its_migration_and_the_log_gets_it_once(tmp_path: Path) -> None:
    """The index writes each step into its own file; the site's assembly copies it to the log."""
    path = tmp_path / "index.sqlite3"

    def open_index() -> None:
        index = SQLiteIndex(path)
        index.find_series(Query())  # the first connection creates or migrates the schema
        index.close()

    open_index()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE study_projects")  # the layout of schema version 1 (openjip 0.1)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    assert record_index_migrations(tmp_path, path) == 0  # nothing migrated yet
    open_index()  # migrates 1 -> 2
    assert record_index_migrations(tmp_path, path) == 1
    assert record_index_migrations(tmp_path, path) == 0  # never logged twice
    (entry,) = [json.loads(line) for line in (tmp_path / STATE_DIR / MIGRATION_LOG).open()]
    assert (entry["store"], entry["from"], entry["to"]) == ("index", 1, 2)
    assert entry["time"] < time.time()
