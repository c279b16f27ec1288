"""Every versioned store of a site with its version on disk and in this code (read only).

Apart from :mod:`openjip.state.versions` because it reads the index's schema: the stores
(federation among them, which must never load the index) import only the versions module.
"""

from __future__ import annotations

from pathlib import Path

from openjip.index.sqlite.schema import SCHEMA_VERSION
from openjip.state.versions import STORES, StoreVersion, read_versions, sqlite_user_version


def store_versions(home: Path, index_path: Path) -> list[StoreVersion]:
    """Every versioned store of a site: on disk and in this code (read only, changes nothing)."""
    on_disk = read_versions(home)
    found = [StoreVersion(name, on_disk.get(name), store.version) for name, store in STORES.items()]
    return [StoreVersion("index", sqlite_user_version(index_path), SCHEMA_VERSION), *found]
