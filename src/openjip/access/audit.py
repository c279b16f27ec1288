"""``AccessAudit``: one JSON line per access decision that touches patient data, in
``$OPENJIP_HOME/audit/access.jsonl`` (0600), rotated at a size limit keeping three old files.

Every line has ``time`` (ISO 8601, UTC), ``who`` and ``kind`` (user, ae or anonymous),
``action``, ``study`` (empty when a request names none), ``result`` and ``surface``
(``web``, ``dimse``, ``cli``) and, when there is something to say, ``detail``. Writers in several
processes append whole lines under an advisory lock; passwords and tokens are never written.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openjip.access.files import open_private_append
from openjip.access.roles import Principal

KEPT_OLD_LOGS = 3
"""Rotated logs kept (``access.jsonl.1`` newest to ``.3`` oldest)."""

ALLOWED = "allowed"
DENIED = "denied"
"""Results every surface uses; others (``stored``, ``refused``, ``replaced``) say more."""


class AccessAudit:
    """Appends access decisions to one JSON-lines file and reads them back."""

    def __init__(self, path: Path, *, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes

    def record(
        self,
        who: Principal | str,
        action: str,
        result: str,
        *,
        study: str = "",
        surface: str = "web",
        detail: str = "",
        kind: str = "",
    ) -> dict[str, Any]:
        """Append one decision; ``who`` is a principal or, for a failed login, the name tried."""
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "who": who.name if isinstance(who, Principal) else who,
            "kind": who.kind if isinstance(who, Principal) else (kind or "user"),
            "action": str(action),
            "study": study,
            "result": result,
            "surface": surface,
        }
        if detail:
            entry["detail"] = detail
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
        descriptor = open_private_append(self.path)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if os.fstat(descriptor).st_size + len(line) > self.max_bytes:
                rotated = self._rotate()
                os.close(descriptor)
                descriptor = rotated
            os.write(descriptor, line)
        finally:
            os.close(descriptor)
        return entry

    def _rotate(self) -> int:
        """Move the full file to ``.1`` (older ones up) and return a locked new one.

        Runs with the full file locked; a writer that opened the old file before the rename
        finds it renamed under its lock and appends to the newest old file, which is harmless.
        """
        for number in range(KEPT_OLD_LOGS - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{number + 1}"))
        if self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        descriptor = open_private_append(self.path)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        return descriptor

    def entries(self, *, with_rotated: bool = False) -> Iterator[dict[str, Any]]:
        """Every entry, oldest first; with ``with_rotated`` the old files' entries before."""
        paths = [self.path]
        if with_rotated:
            paths = [
                self.path.with_name(f"{self.path.name}.{number}")
                for number in range(KEPT_OLD_LOGS, 0, -1)
            ] + paths
        for path in paths:
            if not path.exists():
                continue
            with path.open("rb") as handle:
                for line in handle:
                    if line.strip():
                        yield json.loads(line)
