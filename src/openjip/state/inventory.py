"""Every versioned store of a site with its version on disk and in this code (read only).

Apart from :mod:`openjip.state.versions` because it reads the index's schema and SQLite
files: the stores (federation among them, which must load neither) import only versions.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from openjip.index.sqlite.schema import SCHEMA_VERSION
from openjip.state.versions import STORES, StoreVersion, read_versions


def sqlite_user_version(path: Path) -> int | None:
    """``PRAGMA user_version`` of a SQLite file, read only; None when there is no file."""
    if not path.is_file():
        return None
    conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def store_versions(home: Path, index_path: Path) -> list[StoreVersion]:
    """Every versioned store of a site: on disk and in this code (read only, changes nothing)."""
    on_disk = read_versions(home)
    found = [StoreVersion(name, on_disk.get(name), store.version) for name, store in STORES.items()]
    return [StoreVersion("index", sqlite_user_version(index_path), SCHEMA_VERSION), *found]
