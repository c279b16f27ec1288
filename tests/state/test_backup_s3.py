"""``openjip site backup|restore`` of a site whose objects are in S3, and backups written to an S3
bucket: against a real S3 server (SeaweedFS), the site receiving over C-STORE."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from minio import Minio
from site_contents import contents
from typer.testing import CliRunner

from openjip.cli.main import app
from openjip.config import Settings
from openjip.state.backup import BackupError, backup, restore
from openjip.storage import open_store

runner = CliRunner()


def bucket_name(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}"


def use_s3(monkeypatch: pytest.MonkeyPatch, s3_server: Any, bucket: str) -> None:
    for name, value in {
        "BACKEND": "s3",
        "S3_ENDPOINT": s3_server.endpoint,
        "S3_BUCKET": bucket,
        "S3_ACCESS_KEY": s3_server.access_key,
        "S3_SECRET_KEY": s3_server.secret_key,
    }.items():
        monkeypatch.setenv(f"OPENJIP_STORAGE__{name}", value)


@pytest.fixture
def settings(openjip_home: Path, s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A local site whose object store is a bucket of the S3 server (the index stays SQLite)."""
    use_s3(monkeypatch, s3_server, bucket_name("site"))
    return Settings()


@pytest.fixture
def new_site(
    tmp_path: Path, s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], Settings]:
    """Switch the environment to a second, empty site (own home, own new bucket)."""

    def switch() -> Settings:
        monkeypatch.setenv("OPENJIP_HOME", str(tmp_path / "new-home"))
        use_s3(monkeypatch, s3_server, bucket_name("restored"))
        return Settings()

    return switch


def client(s3_server: Any) -> Minio:
    return Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False)


def test_an_s3_site_backed_up_to_s3_restores_into_a_new_home_and_bucket(
    filled_site: tuple[Settings, Any], s3_server: Any, new_site: Callable[[], Settings]
) -> None:
    settings, _ = filled_site
    bucket = bucket_name("backups")
    dest = f"s3://{bucket}/site-a"
    result = runner.invoke(app, ["site", "backup", dest])
    assert result.exit_code == 0, result.output
    names = {o.object_name for o in client(s3_server).list_objects(bucket, recursive=True)}
    assert "site-a/manifest.json" in names
    # The 8 instances and the study's project marker (projects/<study>/<project>).
    assert sum(1 for name in names if name and name.startswith("site-a/data/objects/")) == 9

    again = backup(settings, dest)
    assert again.reused == 9, "unchanged objects were copied again"

    result = runner.invoke(app, ["site", "restore", dest])  # still the site itself
    assert result.exit_code == 1 and "already holds data" in result.output
    new = new_site()
    result = runner.invoke(app, ["site", "restore", dest])
    assert result.exit_code == 0, result.output
    original, restored = contents(settings), contents(new)
    assert len(original.series) == 1 and len(original.objects) == 9
    assert original.users == ["admin", "alice"]
    assert restored == original
    assert (new.federation_dir / "site.key").stat().st_mode & 0o777 == 0o600


def test_an_s3_site_backs_up_to_a_folder_too(
    filled_site: tuple[Settings, Any], tmp_path: Path, new_site: Callable[[], Settings]
) -> None:
    settings, _ = filled_site
    first = backup(settings, tmp_path / "backup")
    assert len(list((tmp_path / "backup" / "data" / "objects").rglob("*.dcm"))) == 8
    assert (tmp_path / "backup").stat().st_mode & 0o777 == 0o700
    assert backup(settings, tmp_path / "backup").reused == 9 and first.reused == 0
    new = new_site()
    restore(new, tmp_path / "backup")
    assert contents(new) == contents(settings)


def test_a_corrupted_object_in_an_s3_backup_is_refused_and_nothing_restored(
    filled_site: tuple[Settings, Any], s3_server: Any, new_site: Callable[[], Settings]
) -> None:
    settings, _ = filled_site
    bucket = bucket_name("backups")
    backup(settings, f"s3://{bucket}/nightly")
    s3 = client(s3_server)
    damaged = next(
        o.object_name
        for o in s3.list_objects(bucket, prefix="nightly/data/objects/", recursive=True)
        if o.object_name and o.object_name.endswith(".dcm")
    )
    response = s3.get_object(bucket, damaged)
    data = bytearray(response.read())
    response.close()
    data[-1] ^= 0xFF
    s3.put_object(bucket, damaged, io.BytesIO(bytes(data)), len(data))

    new = new_site()
    result = runner.invoke(app, ["site", "restore", f"s3://{bucket}/nightly"])
    assert result.exit_code == 1
    assert "checksum mismatch" in result.output and Path(damaged).name in result.output
    assert list(new.home_dir.iterdir()) == []
    assert list(open_store(new).list("")) == []  # the new bucket got no object


def test_restore_into_a_bucket_that_holds_objects_is_refused(
    filled_site: tuple[Settings, Any], tmp_path: Path
) -> None:
    settings, _ = filled_site
    backup(settings, tmp_path / "backup")
    same_bucket = Settings(home=tmp_path / "new-home")
    with pytest.raises(BackupError, match="already holds objects"):
        restore(same_bucket, tmp_path / "backup")
    assert not (tmp_path / "new-home").exists()


def test_a_backup_into_the_sites_own_bucket_is_refused(filled_site: tuple[Settings, Any]) -> None:
    settings, _ = filled_site
    result = runner.invoke(app, ["site", "backup", f"s3://{settings.storage.s3_bucket}/backup"])
    assert result.exit_code == 1
    assert "the site's own bucket" in result.output
