"""``openjip site check``: exit 1 when an upgrade would fail (newer state, too little disk, no
recent backup when one is required); pending migrations are reported; nothing is changed."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from test_versions import make_newer, snapshot
from typer.testing import CliRunner

from openjip.cli.main import app
from openjip.config import Settings
from openjip.index.sqlite.schema import SCHEMA_VERSION

runner = CliRunner()


def test_a_site_this_code_can_open_passes(filled_site: tuple[Settings, Any]) -> None:
    result = runner.invoke(app, ["site", "check"])
    assert result.exit_code == 0, result.output
    assert f"index: version {SCHEMA_VERSION}, code {SCHEMA_VERSION}" in result.output
    assert "users: version 1, code 1" in result.output
    assert "FAIL" not in result.output


def test_newer_state_fails_and_is_left_untouched(filled_site: tuple[Settings, Any]) -> None:
    settings, _ = filled_site
    make_newer(settings.home_dir, "federation")
    before = snapshot(settings.home_dir)
    result = runner.invoke(app, ["site", "check"])
    assert result.exit_code == 1
    assert "FAIL the federation state is at schema version 2, newer than version 1" in result.output
    assert snapshot(settings.home_dir) == before


def test_too_little_free_disk_fails(filled_site: tuple[Settings, Any]) -> None:
    result = runner.invoke(app, ["site", "check", "--min-free-mib", str(2**40)])
    assert result.exit_code == 1
    assert "FAIL free disk" in result.output


def test_a_required_backup_must_exist(filled_site: tuple[Settings, Any], tmp_path: Path) -> None:
    result = runner.invoke(app, ["site", "check", "--max-backup-age-hours", "24"])
    assert result.exit_code == 1 and "FAIL no backup" in result.output
    assert runner.invoke(app, ["site", "backup", str(tmp_path / "backup")]).exit_code == 0
    result = runner.invoke(app, ["site", "check", "--max-backup-age-hours", "24"])
    assert result.exit_code == 0, result.output
    assert f"newest backup 0.0 h old in {tmp_path / 'backup'}" in result.output


def test_pending_index_migration_is_reported(filled_site: tuple[Settings, Any]) -> None:
    settings, receiver = filled_site
    receiver.service.stop()
    with sqlite3.connect(settings.index_path) as conn:
        conn.execute("DROP TABLE study_projects")
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    result = runner.invoke(app, ["site", "check"])
    assert result.exit_code == 0, result.output
    assert f"index: version 1, code {SCHEMA_VERSION}, 1 migration(s) pending" in result.output
