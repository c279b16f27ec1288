"""Schema versions of the stores of a site, their forward migrations and the migration log.

The SQLite index keeps its version in the file (``PRAGMA user_version``, migrated by
:mod:`openjip.index.sqlite.schema`); the other stores (users, federation state, trigger queue,
de-identification secret) keep theirs in ``$OPENJIP_HOME/state/versions.json``. A store of an
older version is migrated forward on open and the step appended to
``$OPENJIP_HOME/state/migrations.jsonl``; a store newer than this code is refused with
:class:`StateTooNew` before anything is written, so that rolling back to an older openjip never
damages state a newer one wrote.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from openjip import __version__

STATE_DIR = "state"
VERSIONS_FILE = "versions.json"
MIGRATION_LOG = "migrations.jsonl"
LOCK_FILE = "versions.lock"
UNRECORDED_VERSION = 1
"""The version of a store whose version was never recorded: openjip 0.1 recorded none."""

Migration = Callable[[Path], None]
"""One step forward: receives the site's home and migrates the store in place."""


@dataclass(frozen=True)
class FileStore:
    """A store whose version lives in ``versions.json``; ``migrations[n]`` goes from n to n+1."""

    name: str
    version: int
    migrations: dict[int, Migration]


STORES: dict[str, FileStore] = {
    # Version 1: users.json of openjip 0.1 (which had no users at all: an absent file is fine).
    "users": FileStore("users", 1, {}),
    # Version 1: site.key/site.json, peers.json, outbox/inbox/audit as openjip 0.1 wrote them.
    "federation": FileStore("federation", 1, {}),
    # Version 1: workflow-triggers.sqlite3, one row per (workflow, run id), as openjip 0.1 made it.
    "trigger-queue": FileStore("trigger-queue", 1, {}),
    # Version 1: deid.secret, one URL-safe random token; pseudonyms are HMAC-SHA256 under it of
    # "<kind>\0<value>" (openjip.deid.pseudonyms). Another derivation would give every patient
    # another pseudonym: it would be version 2, and older code would refuse it.
    "deid-secret": FileStore("deid-secret", 1, {}),
}


class StateTooNew(RuntimeError):
    """State written by a newer openjip than this one; the message names both versions."""


@dataclass(frozen=True)
class StoreVersion:
    """What a store is at on disk, what this code expects, and whether it can open it."""

    name: str
    on_disk: int | None
    """None: the store does not exist yet (or is unversioned state of openjip 0.1)."""
    code: int

    @property
    def too_new(self) -> bool:
        return self.on_disk is not None and self.on_disk > self.code

    @property
    def pending(self) -> int:
        """Migration steps an open would run."""
        return 0 if self.on_disk is None else max(0, self.code - self.on_disk)


def too_new_message(name: str, on_disk: int, code: int) -> str:
    return (
        f"the {name} state is at schema version {on_disk}, newer than version {code} that this "
        f"openjip {__version__} knows; it was written by a newer openjip: upgrade openjip again "
        "(or restore a backup made before the upgrade). Nothing was changed."
    )


def _versions_path(home: Path) -> Path:
    return home / STATE_DIR / VERSIONS_FILE


def read_versions(home: Path) -> dict[str, int]:
    path = _versions_path(home)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise StateTooNew(f"cannot read {path}: {error}") from error
    return {str(name): int(version) for name, version in data.items()}


def _write_versions(home: Path, versions: dict[str, int]) -> None:
    path = _versions_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(versions, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def log_migration(
    home: Path, store: str, before: int | None, after: int, at: float | None = None
) -> None:
    """Append one line to the migration log (``before`` None: the store was first versioned;
    ``at``: when the step ran, if not now)."""
    path = home / STATE_DIR / MIGRATION_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"time": time.time() if at is None else at, "store": store, "from": before, "to": after}
    with path.open("a") as log:
        log.write(json.dumps({**entry, "openjip": __version__}) + "\n")


def _up_to_date(store: FileStore, on_disk: int | None) -> bool:
    """True when ``on_disk`` is this code's version; :class:`StateTooNew` when it is newer."""
    if on_disk is not None and on_disk > store.version:
        raise StateTooNew(too_new_message(store.name, on_disk, store.version))
    return on_disk == store.version


def ensure_store(home: Path, name: str) -> None:
    """Called when a store is opened: refuse a newer version, migrate an older one, log both.

    A store with no recorded version is in the layout of openjip 0.1 (version 1, before
    versions were recorded): it is migrated from there. Processes take turns on a lock file, so
    that two stores recorded at once by two processes both stay recorded.
    """
    store = STORES[name]
    if _up_to_date(store, read_versions(home).get(name)):  # no lock when nothing is to change
        return
    (home / STATE_DIR).mkdir(parents=True, exist_ok=True)
    with (home / STATE_DIR / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        versions = read_versions(home)
        on_disk = versions.get(name)
        if _up_to_date(store, on_disk):
            return
        if on_disk is None:
            log_migration(home, name, None, UNRECORDED_VERSION)
        for step in range(on_disk or UNRECORDED_VERSION, store.version):
            store.migrations[step](home)
            log_migration(home, name, step, step + 1)
        _write_versions(home, {**versions, name: store.version})


def logged_migrations(home: Path) -> list[dict[str, object]]:
    """The entries of the migration log, oldest first."""
    try:
        lines = (home / STATE_DIR / MIGRATION_LOG).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]
