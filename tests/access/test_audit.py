"""The access audit: one JSON line per decision, 0600, rotated at its size limit."""

from __future__ import annotations

import stat
from pathlib import Path

from openjip.access import AccessAudit, principal


def test_records_who_what_result_and_rotates(tmp_path: Path) -> None:
    audit = AccessAudit(tmp_path / "audit" / "access.jsonl", max_bytes=1024)
    viewer = principal("vera", "user", ["viewer"], ["p1"])
    entry = audit.record(viewer, "get", "allowed", study="1.2.3")
    assert stat.S_IMODE(audit.path.stat().st_mode) == 0o600
    assert entry["who"] == "vera" and entry["kind"] == "user" and entry["study"] == "1.2.3"
    assert entry["time"].endswith("+00:00")
    audit.record("mallory", "login", "denied", detail="wrong password")
    assert [e["who"] for e in audit.entries()] == ["vera", "mallory"]

    for number in range(40):
        audit.record(viewer, "find", "allowed", study=f"1.2.{number}")
    rotated = sorted(p.name for p in audit.path.parent.iterdir())
    assert rotated == ["access.jsonl", "access.jsonl.1", "access.jsonl.2", "access.jsonl.3"]
    assert all(p.stat().st_size <= 1024 for p in audit.path.parent.iterdir())
    newest = list(audit.entries(with_rotated=True))[-1]
    assert newest["study"] == "1.2.39"
