"""``openjip site check``: would this openjip open the site's state, before anything changes?

Reads only: the schema version of every store against this code's, the pending migrations, the
free disk they need, and the age of the newest backup. Any finding that would make an upgrade
fail (a store newer than the code, too little disk, no recent enough backup when one is
required) fails the check.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from openjip import __version__
from openjip.config import Settings
from openjip.state.backup import last_backup
from openjip.state.inventory import store_versions
from openjip.state.versions import too_new_message

DEFAULT_MIN_FREE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Finding:
    ok: bool
    text: str


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (the disk a new home would live on)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_site(
    settings: Settings, *, min_free_bytes: int, max_backup_age_hours: float | None
) -> list[Finding]:
    home = settings.home_dir
    findings = [Finding(True, f"openjip {__version__} (the code that would open this site)")]
    pending_index = False
    stores = store_versions(home, settings.index_path)
    if settings.index.backend != "sqlite":
        stores = [store for store in stores if store.name != "index"]
        findings.append(
            Finding(True, "index: OpenSearch; a service refuses a newer openjip's templates")
        )
    for store in stores:
        if store.too_new:
            assert store.on_disk is not None
            findings.append(Finding(False, too_new_message(store.name, store.on_disk, store.code)))
        elif store.on_disk is None:
            findings.append(Finding(True, f"{store.name}: not created yet (version {store.code})"))
        else:
            pending = f", {store.pending} migration(s) pending" if store.pending else ""
            findings.append(
                Finding(True, f"{store.name}: version {store.on_disk}, code {store.code}{pending}")
            )
            pending_index |= store.name == "index" and store.pending > 0
    # A migration of the index runs in one transaction: its WAL may grow to the file's size.
    index_size = settings.index_path.stat().st_size if settings.index_path.is_file() else 0
    needed = min_free_bytes + (2 * index_size if pending_index else 0)
    free = shutil.disk_usage(_existing(home)).free
    findings.append(
        Finding(
            free >= needed, f"free disk {free / 2**20:.0f} MiB, needed {needed / 2**20:.0f} MiB"
        )
    )
    findings.append(_backup_finding(home, max_backup_age_hours))
    return findings


def _backup_finding(home: Path, max_age_hours: float | None) -> Finding:
    last = last_backup(home)
    if last is None:
        return Finding(
            max_age_hours is None, "no backup of this site recorded (`openjip site backup`)"
        )
    age_hours = (time.time() - float(last["started_at"])) / 3600
    text = f"newest backup {age_hours:.1f} h old in {last['dest']}"
    if max_age_hours is not None and age_hours > max_age_hours:
        return Finding(False, f"{text}, older than the {max_age_hours} h required")
    return Finding(True, text)
