"""``openjip site backup DEST`` and ``openjip site restore SRC``.

A backup is a folder: ``data/<area>/<path>`` for every file and ``manifest.json`` (size and
sha256 of each, written last). Areas: ``index`` (the SQLite index), ``objects`` (the local
object store), ``home`` (everything else under ``OPENJIP_HOME``: federation keys and state,
users, secrets, the trigger queue, Airflow's metadata database, the migration log).

Consistency under load: the index is copied first with SQLite's online backup API, then the
object store. The receiver acknowledges an instance only after its object is durable and then
indexed, so every instance in the copied index (every one acknowledged before the backup began)
has its object in the backup; objects that arrive later are in it too, or in the next run.

Incremental: a second backup into the same folder copies only objects whose size or mtime
changed since the manifest there; unchanged objects keep their checksum and bytes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openjip import __version__
from openjip.config import Settings
from openjip.state.files import copy_file, copy_sqlite, is_sqlite, sha256_of, walk
from openjip.state.inventory import store_versions
from openjip.state.versions import STATE_DIR

MANIFEST = "manifest.json"
FORMAT = 1
BACKUPS_FILE = "backups.json"
SKIPPED_HOME_FOLDERS = ("incoming", "work", "airflow/logs")
"""Transient: files being received, step working folders, Airflow task logs."""


class BackupError(RuntimeError):
    """A backup that cannot be made or restored; the message says why."""


@dataclass(frozen=True)
class BackupResult:
    files: int
    copied: int
    reused: int
    manifest: Path


def areas(settings: Settings) -> dict[str, Path]:
    # Absolute, so that a backup folder inside OPENJIP_HOME is recognised and left out.
    return {
        "index": settings.index_path.absolute(),
        "objects": settings.storage_path.absolute(),
        "home": settings.home_dir.absolute(),
    }


def _sources(settings: Settings, backup_dir: Path) -> list[tuple[str, Path, Path]]:
    """(area, source file, path in the area): the index first, then objects, then the rest."""
    roots = areas(settings)
    found: list[tuple[str, Path, Path]] = []
    if roots["index"].is_file():
        found.append(("index", roots["index"], Path(roots["index"].name)))
    if roots["objects"].is_dir():
        found += [
            ("objects", p, p.relative_to(roots["objects"])) for p in walk(roots["objects"], set())
        ]
    home = roots["home"]
    # The OHIF viewer is installed software (`make viewer`), not state.
    viewer = settings.viewer_path.absolute()
    skip = {home / folder for folder in SKIPPED_HOME_FOLDERS} | {
        roots["objects"],
        backup_dir,
        viewer,
    }
    for path in walk(home, skip):
        if path != roots["index"]:
            found.append(("home", path, path.relative_to(home)))
    return found


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{folder} holds no backup ({MANIFEST} is missing)") from None
    except (OSError, ValueError) as error:
        raise BackupError(f"cannot read {folder / MANIFEST}: {error}") from error
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{folder}: backup format {manifest.get('format')}, expected {FORMAT}")
    return manifest


def _site_id(home: Path) -> str | None:
    try:
        return str(json.loads((home / "federation" / "site.json").read_text())["site_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def backup(settings: Settings, dest: Path) -> BackupResult:
    """Write (or bring up to date) a backup of the site in ``dest``."""
    if settings.storage.backend != "local":
        raise BackupError("site backup copies a local object store; for S3, back up the bucket")
    dest = dest.absolute()
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o700)  # patient data and keys: the owner's only, as OPENJIP_HOME
    previous = _read_manifest(dest)["files"] if (dest / MANIFEST).exists() else {}
    started = time.time()
    roots = areas(settings)
    files: dict[str, dict[str, Any]] = {}
    folders: dict[str, int] = {}
    copied = reused = 0
    for area, source, relative in _sources(settings, dest):
        name = f"{area}/{relative.as_posix()}"
        target = dest / "data" / name
        try:
            stat = source.stat()
            old = previous.get(name)
            unchanged = (
                area == "objects"
                and old is not None
                and (old["size"], old["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
                and target.is_file()
                and target.stat().st_size == stat.st_size
            )
            if unchanged:
                digest = str(old["sha256"])  # type: ignore[index]
                reused += 1
            else:
                digest = (
                    copy_sqlite(source, target) if is_sqlite(source) else copy_file(source, target)
                )
                copied += 1
        except FileNotFoundError:
            continue  # removed while the backup ran (e.g. a deleted object)
        size = target.stat().st_size
        mode = stat.st_mode & 0o7777
        files[name] = {"sha256": digest, "size": size, "mtime_ns": stat.st_mtime_ns, "mode": mode}
        for parent in relative.parents[:-1]:
            folder = f"{area}/{parent.as_posix()}"
            if folder not in folders:
                folders[folder] = (roots[area] / parent).stat().st_mode & 0o7777
    for stale in walk(dest / "data", set()):
        if stale.relative_to(dest / "data").as_posix() not in files:
            stale.unlink()
    manifest = {
        "format": FORMAT,
        "openjip": __version__,
        "started_at": started,
        "finished_at": time.time(),
        "site_id": _site_id(settings.home_dir),
        "versions": {
            v.name: v.on_disk for v in store_versions(settings.home_dir, settings.index_path)
        },
        "files": files,
        "folders": folders,
    }
    partial = dest / f".{MANIFEST}.partial"
    partial.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(partial, dest / MANIFEST)
    _remember(settings.home_dir, dest, manifest)
    return BackupResult(len(files), copied, reused, dest / MANIFEST)


def _remember(home: Path, dest: Path, manifest: dict[str, Any]) -> None:
    """Note the backup in the site's state, for ``openjip site check``."""
    path = home / STATE_DIR / BACKUPS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "dest": str(dest),
        "started_at": manifest["started_at"],
        "finished_at": manifest["finished_at"],
    }
    path.write_text(json.dumps({"last": record}, indent=2) + "\n")


def last_backup(home: Path) -> dict[str, Any] | None:
    try:
        last: dict[str, Any] = json.loads((home / STATE_DIR / BACKUPS_FILE).read_text())["last"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return last


def _not_empty(path: Path) -> bool:
    return path.exists() and (path.is_file() or any(path.iterdir()))


def verify(source: Path) -> dict[str, Any]:
    """The manifest of the backup in ``source`` once every file matched its size and sha256."""
    manifest = _read_manifest(source)
    bad: list[str] = []
    for name, entry in manifest["files"].items():
        path = source / "data" / name
        if not path.is_file():
            bad.append(f"{name}: missing")
        elif path.stat().st_size != entry["size"] or sha256_of(path) != entry["sha256"]:
            bad.append(f"{name}: checksum mismatch")
    if bad:
        shown = "; ".join(bad[:5]) + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
        raise BackupError(f"backup {source} is damaged, nothing restored: {shown}")
    return manifest


def restore(settings: Settings, source: Path) -> dict[str, Any]:
    """Rebuild a site from a backup into empty paths; every checksum is verified first."""
    roots = areas(settings)
    for root in roots.values():
        if _not_empty(root):
            raise BackupError(
                f"{root} already holds data; restore only into a new, empty OPENJIP_HOME"
            )
    manifest = verify(source)
    for name, entry in manifest["files"].items():
        area, _, relative = name.partition("/")
        target = roots[area] if area == "index" else roots[area] / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if copy_file(source / "data" / name, target) != entry["sha256"]:
            raise BackupError(f"{name} changed while it was restored; restore again")
        os.chmod(target, entry["mode"])
    # Folders keep their modes (access/ and federation/ are 0700: password hashes and keys).
    for name, mode in manifest["folders"].items():
        area, _, relative = name.partition("/")
        os.chmod(roots[area] / relative, mode)
    return manifest
