"""``openjip site backup DEST`` and ``openjip site restore SRC``.

A backup is a folder or an S3 prefix (:mod:`openjip.state.places`): ``data/<area>/<path>`` for
every file and ``manifest.json`` (size and sha256 of each, written last). Areas: ``index`` (the
SQLite index), ``objects`` (the object store, local or S3, read through its ObjectStore), ``home``
(everything else under ``OPENJIP_HOME``: federation keys and state, users, secrets, the trigger
queue, Airflow's metadata database, the migration log). An OpenSearch index is not copied: it is
recreated from the restored objects with ``openjip index rebuild`` (the manifest says so).

Consistency under load: the index is copied first with SQLite's online backup API, then the
object store. The receiver acknowledges an instance only after its object is durable and then
indexed, so every instance in the copied index (every one acknowledged before the backup began)
has its object in the backup; objects that arrive later are in it too, or in the next run.

Incremental: a second backup into the same place copies only objects whose size or modification
time changed since the manifest there; unchanged objects keep their checksum and bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from openjip import __version__
from openjip.config import Settings
from openjip.state.files import (
    CHUNK_BYTES,
    HashingReader,
    copy_sqlite,
    is_sqlite,
    walk,
    write_stream,
)
from openjip.state.inventory import store_versions
from openjip.state.places import Place, PlaceError, open_place
from openjip.state.versions import STATE_DIR
from openjip.storage import ObjectInfo, ObjectNotFound, ObjectStore, StorageError, open_store

MANIFEST = "manifest.json"
DATA = "data/"
FORMAT = 1
BACKUPS_FILE = "backups.json"
SKIPPED_HOME_FOLDERS = ("incoming", "work", "airflow/logs")
"""Transient: files being received, step working folders, Airflow task logs."""
STAGING = ".backup-staging"
"""Folder in OPENJIP_HOME of the consistent copies of SQLite files on their way to the backup."""
OBJECT_MODE = 0o600


class BackupError(RuntimeError):
    """A backup that cannot be made or restored; the message says why."""


@dataclass(frozen=True)
class BackupResult:
    files: int
    copied: int
    reused: int
    manifest: str


def areas(settings: Settings) -> dict[str, Path]:
    # Absolute, so that a backup folder inside OPENJIP_HOME is recognised and left out.
    return {
        "index": settings.index_path.absolute(),
        "objects": settings.storage_path.absolute(),
        "home": settings.home_dir.absolute(),
    }


def _local_files(settings: Settings, skip: set[Path]) -> list[tuple[str, Path, Path]]:
    """(area, file, path in the area): the SQLite index (when it is the index), then the home."""
    roots = areas(settings)
    found: list[tuple[str, Path, Path]] = []
    if settings.index.backend == "sqlite" and roots["index"].is_file():
        found.append(("index", roots["index"], Path(roots["index"].name)))
    home = roots["home"]
    # The OHIF viewer is installed software (`make viewer`), not state.
    skip |= {home / folder for folder in SKIPPED_HOME_FOLDERS} | {
        roots["objects"],
        home / STAGING,
        settings.viewer_path.absolute(),
    }
    found += [("home", p, p.relative_to(home)) for p in walk(home, skip) if p != roots["index"]]
    return found


def _read_manifest(place: Place) -> dict[str, Any]:
    try:
        with place.open(MANIFEST) as source:
            manifest: dict[str, Any] = json.loads(source.read())
    except ObjectNotFound:
        raise BackupError(f"{place.description} holds no backup ({MANIFEST} is missing)") from None
    except (StorageError, ValueError) as error:
        raise BackupError(f"cannot read {MANIFEST} of {place.description}: {error}") from error
    if manifest.get("format") != FORMAT:
        raise BackupError(
            f"{place.description}: backup format {manifest.get('format')}, expected {FORMAT}"
        )
    return manifest


def _site_id(home: Path) -> str | None:
    try:
        return str(json.loads((home / "federation" / "site.json").read_text())["site_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _mtime_ns(info: ObjectInfo) -> int:
    return int(info.modified.timestamp() * 1_000_000) * 1000


class _Writer:
    """Puts files into a backup place, counting and hashing them; knows what is there already."""

    def __init__(self, place: Place, previous: dict[str, Any], staging: Path) -> None:
        self.place = place
        self.previous = previous
        self.held = dict(place.list(DATA))
        self.staging = staging
        self.files: dict[str, dict[str, Any]] = {}
        self.copied = self.reused = 0

    def put(self, name: str, source: BinaryIO, size_mtime_mode: tuple[int, int, int]) -> None:
        reader = HashingReader(source)
        self.place.put(DATA + name, reader)  # type: ignore[arg-type]
        self.copied += 1
        self._record(name, reader.hexdigest(), reader.size, size_mtime_mode)

    def keep_if_unchanged(self, name: str, size: int, mtime_ns: int) -> bool:
        old = self.previous.get(name)
        if old is None or (old["size"], old["mtime_ns"]) != (size, mtime_ns):
            return False
        if self.held.get(DATA + name) != size:
            return False
        self.reused += 1
        self._record(name, str(old["sha256"]), size, (size, mtime_ns, OBJECT_MODE))
        return True

    def put_local(self, name: str, path: Path) -> None:
        stat = path.stat()
        if is_sqlite(path):
            copy = self.staging / "copy.sqlite3"
            copy_sqlite(path, copy)
            path = copy
        with path.open("rb") as source:
            self.put(name, source, (stat.st_size, stat.st_mtime_ns, stat.st_mode & 0o7777))

    def _record(self, name: str, digest: str, size: int, stat: tuple[int, int, int]) -> None:
        self.files[name] = {"sha256": digest, "size": size, "mtime_ns": stat[1], "mode": stat[2]}

    def remove_stale(self) -> None:
        for held in self.held:
            if held[len(DATA) :] not in self.files:
                self.place.delete(held)


def backup(settings: Settings, dest: str | Path) -> BackupResult:
    """Write (or bring up to date) a backup of the site in ``dest`` (folder or ``s3://...``)."""
    try:
        place = open_place(settings, dest)
        return _backup(settings, place)
    except (PlaceError, StorageError) as error:
        raise BackupError(str(error)) from error


def _backup(settings: Settings, place: Place) -> BackupResult:
    if place.folder is not None:
        place.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(place.folder, 0o700)  # patient data and keys: the owner's only, as OPENJIP_HOME
    previous = _read_manifest(place)["files"] if place.head(MANIFEST) else {}
    started = time.time()
    home = settings.home_dir.absolute()
    skip = {place.folder} if place.folder is not None else set()
    local = _local_files(settings, skip)
    folders = {
        f"home/{parent.as_posix()}": (home / parent).stat().st_mode & 0o7777
        for area, _, relative in local
        if area == "home"
        for parent in relative.parents[:-1]
    }
    staging = home / STAGING
    staging.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        writer = _Writer(place, previous, staging)
        index = [entry for entry in local if entry[0] == "index"]
        for area, path, relative in index:
            writer.put_local(f"{area}/{relative.as_posix()}", path)
        _backup_objects(open_store(settings), writer)
        for area, path, relative in local:
            if area != "index":
                try:
                    writer.put_local(f"{area}/{relative.as_posix()}", path)
                except FileNotFoundError:
                    continue  # removed while the backup ran
        writer.remove_stale()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest = {
        "format": FORMAT,
        "openjip": __version__,
        "started_at": started,
        "finished_at": time.time(),
        "site_id": _site_id(settings.home_dir),
        "index": settings.index.backend,
        "versions": {
            v.name: v.on_disk for v in store_versions(settings.home_dir, settings.index_path)
        },
        "files": writer.files,
        "folders": folders,
    }
    place.put(MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    _remember(settings.home_dir, place.description, manifest)
    return BackupResult(len(writer.files), writer.copied, writer.reused, place.description)


def _backup_objects(store: ObjectStore, writer: _Writer) -> None:
    """Every object of the site's store, after the index; unchanged ones are kept as they are."""
    for info in store.list(""):
        name = f"objects/{info.key}"
        mtime_ns = _mtime_ns(info)
        if writer.keep_if_unchanged(name, info.size, mtime_ns):
            continue
        try:
            with store.open(info.key) as source:
                writer.put(name, source, (info.size, mtime_ns, OBJECT_MODE))
        except ObjectNotFound:
            continue  # deleted while the backup ran


def _remember(home: Path, dest: str, manifest: dict[str, Any]) -> None:
    """Note the backup in the site's state, for ``openjip site check``."""
    path = home / STATE_DIR / BACKUPS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "dest": dest,
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


def _digest_of(place: Place, name: str) -> str | None:
    """sha256 of a file of the backup; None when it is missing."""
    try:
        with place.open(DATA + name) as source:
            reader = HashingReader(source)
            while reader.read(CHUNK_BYTES):
                pass
    except ObjectNotFound:
        return None
    return reader.hexdigest()


def verify(place: Place) -> dict[str, Any]:
    """The manifest of the backup in ``place`` once every file matched its sha256."""
    manifest = _read_manifest(place)
    bad: list[str] = []
    for name, entry in manifest["files"].items():
        digest = _digest_of(place, name)
        if digest is None:
            bad.append(f"{name}: missing")
        elif digest != entry["sha256"]:
            bad.append(f"{name}: checksum mismatch")
    if bad:
        shown = "; ".join(bad[:5]) + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
        raise BackupError(f"backup {place.description} is damaged, nothing restored: {shown}")
    return manifest


def restore(settings: Settings, source: str | Path) -> dict[str, Any]:
    """Rebuild a site from a backup into an empty home and store; every checksum verified first."""
    try:
        place = open_place(settings, source)
        store = open_store(settings)
        return _restore(settings, place, store)
    except (PlaceError, StorageError) as error:
        raise BackupError(str(error)) from error


def _restore(settings: Settings, place: Place, store: ObjectStore) -> dict[str, Any]:
    roots = areas(settings)
    for root in roots.values():
        if _not_empty(root):
            raise BackupError(
                f"{root} already holds data; restore only into a new, empty OPENJIP_HOME"
            )
    if next(store.list(""), None) is not None:
        raise BackupError(
            f"the object store {store!r} already holds objects; restore into an empty one"
        )
    manifest = verify(place)
    for name, entry in manifest["files"].items():
        area, _, relative = name.partition("/")
        with place.open(DATA + name) as stream:
            reader = HashingReader(stream)
            if area == "objects":
                store.put(relative, reader)  # type: ignore[arg-type]
            else:
                target = roots[area] if area == "index" else roots[area] / relative
                write_stream(reader, target, entry["mode"])  # type: ignore[arg-type]
        if reader.hexdigest() != entry["sha256"]:
            raise BackupError(f"{name} changed while it was restored; restore again")
    # Folders keep their modes (access/ and federation/ are 0700: password hashes and keys).
    # Objects went through the site's store, which makes its own (0700) folders, if any.
    for name, mode in manifest["folders"].items():
        area, _, relative = name.partition("/")
        if area != "objects":
            os.chmod(roots[area] / relative, mode)
    return manifest
