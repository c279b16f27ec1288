"""The audit log: every publish, fetch, verification failure, approval and rejection, appended
to a JSONL file in which each entry carries the hash of the one before it.

Editing, removing or reordering any line breaks the chain, which :func:`verify_chain` reports.
Every entry names its ``format``: version 2 hashes RFC 8785 canonical JSON; entries without a
format are version 1 (sorted-key ``json.dumps``) and are verified by that rule, so logs written
before the change still verify.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from openjip.federation.canonical import canonical_json, digest, legacy_json

GENESIS = "0" * 64
AUDIT_FORMAT = "openjip-audit/2"


def _entry_hash(entry: dict[str, Any]) -> str | None:
    """The hash an entry should carry, by its format version; ``None`` for an unknown one."""
    found = entry.get("format")
    if found == AUDIT_FORMAT:
        return digest(entry)
    if found is None:
        return hashlib.sha256(legacy_json(entry)).hexdigest()
    return None


@dataclass(frozen=True)
class ChainBreak:
    """Where the chain is broken and how."""

    line: int
    message: str


def _last_line(handle: BinaryIO) -> bytes:
    """The last non-empty line of the open file, read backwards from its end."""
    end = handle.seek(0, os.SEEK_END)
    position, tail = end, b""
    while position > 0:
        step = min(4096, position)
        position -= step
        handle.seek(position)
        tail = handle.read(step) + tail
        lines = [line for line in tail.split(b"\n") if line.strip()]
        # A complete last line has a newline (or the file start) before it.
        if len(lines) > 1 or (lines and position == 0):
            return lines[-1]
    return b""


class AuditLog:
    """Append-only, hash-chained JSONL log."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, event: str, **details: Any) -> dict[str, Any]:
        """Append one entry durably and return it (with its ``hash``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as handle:
            # The CLI and the service may append at once: the lock keeps the chain linear.
            fcntl.flock(handle, fcntl.LOCK_EX)
            last = _last_line(handle)
            previous, sequence = GENESIS, 0
            if last:
                tail = json.loads(last)
                previous, sequence = tail["hash"], tail["seq"] + 1
            entry: dict[str, Any] = {
                "format": AUDIT_FORMAT,
                "seq": sequence,
                "time": round(time.time(), 3),
                "event": event,
                "details": details,
                "prev": previous,
            }
            entry["hash"] = digest(entry)
            handle.seek(0, os.SEEK_END)
            handle.write(canonical_json(entry) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        return entry

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every entry in order (unverified)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def verify_chain(self) -> list[ChainBreak]:
        """Check every entry's hash and link; an empty list means the log is intact."""
        breaks: list[ChainBreak] = []
        if not self.path.exists():
            return breaks
        previous = GENESIS
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    stated = entry.pop("hash")
                except (ValueError, KeyError, AttributeError):
                    breaks.append(ChainBreak(number, "not an audit entry"))
                    previous = ""
                    continue
                expected = _entry_hash(entry)
                if expected is None:
                    breaks.append(ChainBreak(number, f"unknown entry format {entry['format']!r}"))
                elif expected != stated:
                    breaks.append(ChainBreak(number, "entry was altered (hash mismatch)"))
                if entry.get("prev") != previous:
                    breaks.append(ChainBreak(number, "chain link broken (entry removed/reordered)"))
                previous = stated
        return breaks
