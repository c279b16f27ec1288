"""Every versioned store of a site with its version on disk and in this code (read only), and
the index's own migrations copied into the site's migration log.

Apart from :mod:`openjip.state.versions` because it reads the index's schema and SQLite
files: the stores (federation among them, which must load neither) import only versions. The
index records each migration step in its own file (it cannot import this package: state reads
the index); :func:`record_index_migrations` brings them into ``migrations.jsonl``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from openjip.index.sqlite.schema import SCHEMA_VERSION, applied_migrations
from openjip.state.versions import (
    STORES,
    StoreVersion,
    log_migration,
    logged_migrations,
    read_versions,
)


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)


def sqlite_user_version(path: Path) -> int | None:
    """``PRAGMA user_version`` of a SQLite file, read only; None when there is no file."""
    if not path.is_file():
        return None
    conn = _read_only(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def record_index_migrations(home: Path, index_path: Path) -> int:
    """Append to the migration log each step the SQLite index reports and the log lacks yet;
    how many. Called by the site's assembly once the index is open (so migrated)."""
    if not index_path.is_file():
        return 0
    conn = _read_only(index_path)
    try:
        steps = applied_migrations(conn)
    finally:
        conn.close()
    logged = {
        (entry["from"], entry["to"], entry["time"])
        for entry in logged_migrations(home)
        if entry.get("store") == "index"
    }
    new = [step for step in steps if step not in logged]
    for before, after, at in new:
        log_migration(home, "index", before, after, at)
    return len(new)


def store_versions(home: Path, index_path: Path) -> list[StoreVersion]:
    """Every versioned store of a site: on disk and in this code (read only, changes nothing)."""
    on_disk = read_versions(home)
    found = [StoreVersion(name, on_disk.get(name), store.version) for name, store in STORES.items()]
    return [StoreVersion("index", sqlite_user_version(index_path), SCHEMA_VERSION), *found]
