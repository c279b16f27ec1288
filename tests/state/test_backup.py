"""``openjip site backup`` / ``restore``: a restored site equals its original; damaged backups
and non-empty homes are refused; a backup under C-STORE load holds every acknowledged instance."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from site_contents import contents, ct_files, send, wait_until
from typer.testing import CliRunner

from openjip.cli.main import app
from openjip.config import Settings
from openjip.deid.pseudonyms import Pseudonyms, site_secret
from openjip.index.base import Query
from openjip.index.sqlite import SQLiteIndex
from openjip.state.backup import BackupError, backup, restore

runner = CliRunner()


def fresh_settings(tmp_path: Path, name: str) -> Settings:
    return Settings(home=tmp_path / name)


def test_restore_on_a_fresh_home_gives_the_same_site(
    filled_site: tuple[Settings, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = filled_site
    result = runner.invoke(app, ["site", "backup", str(tmp_path / "backup")])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("OPENJIP_HOME", str(tmp_path / "new-home"))
    result = runner.invoke(app, ["site", "restore", str(tmp_path / "backup")])
    assert result.exit_code == 0, result.output
    original, restored = contents(settings), contents(fresh_settings(tmp_path, "new-home"))
    # The objects include the marker of the study's project (index rebuild gives it back).
    assert len(original.series) == 1 and len(original.objects) == 9
    assert sum(key.startswith("projects/") for key in original.objects) == 1
    assert original.users == ["admin", "alice"]
    assert restored == original
    assert (tmp_path / "new-home" / "federation" / "site.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "new-home" / "access").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "backup").stat().st_mode & 0o777 == 0o700


def test_the_deid_secret_is_backed_up_and_restored_so_pseudonyms_stay_the_same(
    filled_site: tuple[Settings, Any], tmp_path: Path
) -> None:
    settings, _ = filled_site
    pseudonym = Pseudonyms(site_secret(settings.home_dir, settings.deid_secret_path)).patient(
        "PATIENT-1"
    )
    backup(settings, tmp_path / "backup")
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["files"]["home/deid.secret"]["mode"] == 0o600
    assert manifest["versions"]["deid-secret"] == 1
    restored = fresh_settings(tmp_path, "new-home")
    restore(restored, tmp_path / "backup")
    assert (restored.home_dir / "deid.secret").stat().st_mode & 0o777 == 0o600
    assert (
        Pseudonyms(site_secret(restored.home_dir, restored.deid_secret_path)).patient("PATIENT-1")
        == pseudonym
    )


def test_a_corrupted_backup_file_is_refused_and_nothing_restored(
    filled_site: tuple[Settings, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = filled_site
    backup(settings, tmp_path / "backup")
    damaged = next((tmp_path / "backup" / "data" / "objects").rglob("*.dcm"))
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setenv("OPENJIP_HOME", str(tmp_path / "new-home"))
    result = runner.invoke(app, ["site", "restore", str(tmp_path / "backup")])
    assert result.exit_code == 1
    assert "checksum mismatch" in result.output and damaged.name in result.output
    assert list((tmp_path / "new-home").iterdir()) == []  # made 0700 first, then left empty


def test_restore_into_a_non_empty_home_is_refused(
    filled_site: tuple[Settings, Any], tmp_path: Path
) -> None:
    settings, _ = filled_site
    backup(settings, tmp_path / "backup")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(BackupError, match="already holds data"):
        restore(fresh_settings(tmp_path, "other"), tmp_path / "backup")
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["keep.txt"]


def test_backup_under_c_store_load_holds_every_acknowledged_instance(
    settings: Settings, receiver_factory: Any, tmp_path: Path
) -> None:
    receiver = receiver_factory()
    acknowledged: list[tuple[str, float]] = []
    files = ct_files(tmp_path / "ct", 60)
    sender = threading.Thread(target=send, args=(receiver.address, files, acknowledged))
    sender.start()
    try:
        wait_until(lambda: len(acknowledged) >= 10)
        before = {uid for uid, _ in list(acknowledged)}
        first = backup(settings, tmp_path / "backup")
        during = len(acknowledged)
    finally:
        sender.join(timeout=300)
    assert len(acknowledged) == 60
    assert during < 60, "the sender finished before the backup: no load during it"
    assert before <= restored_instances(tmp_path / "backup", tmp_path / "restore-1")

    second = backup(settings, tmp_path / "backup")
    assert second.reused >= len(before), "unchanged objects were copied again"
    assert second.copied < first.copied + 60
    everything = {uid for uid, _ in acknowledged}
    assert restored_instances(tmp_path / "backup", tmp_path / "restore-2") == everything


def restored_instances(backup_dir: Path, home: Path) -> set[str]:
    """SOP Instance UIDs indexed in a site restored from ``backup_dir``, whose objects are there."""
    settings = Settings(home=home)
    restore(settings, backup_dir)
    index = SQLiteIndex(settings.index_path)
    try:
        instances = index.find_instances(Query())
    finally:
        index.close()
    for instance in instances:
        assert (settings.storage_path / instance.object_key).is_file()
    return {instance.SOPInstanceUID for instance in instances}


def test_a_local_sites_backup_restores_into_an_s3_store(
    filled_site: tuple[Settings, Any], tmp_path: Path, s3_server: Any
) -> None:
    """Moving a site to S3 storage; the backup's manifest as openjip 0.2.0 wrote it, with the
    modes of the local store's folders (an S3 store has none)."""
    settings, _ = filled_site
    backup(settings, tmp_path / "backup")
    manifest_path = tmp_path / "backup" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["folders"]["objects/dicom"] = 0o700
    manifest_path.write_text(json.dumps(manifest))
    storage = s3_server.storage_settings(f"moved-{uuid.uuid4().hex[:10]}")
    moved = Settings(home=tmp_path / "moved", storage=storage)
    restore(moved, tmp_path / "backup")
    assert contents(moved) == contents(settings)
    assert not moved.storage_path.exists()  # the objects are in the bucket, not in the home
