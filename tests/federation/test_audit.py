"""The audit log's hash chain detects an edited, removed or reordered line."""

from __future__ import annotations

import json
from pathlib import Path

from openjip.federation.audit import AuditLog


def _log_with_entries(path: Path) -> AuditLog:
    log = AuditLog(path)
    log.append("publish", workflow_id="ct-body-mask", sequence=1)
    log.append("fetch", peer="a", workflow_id="ct-body-mask", sequence=1)
    log.append("approve", peer="a", workflow_id="ct-body-mask", sequence=1)
    return log


def test_an_intact_log_verifies(tmp_path: Path) -> None:
    log = _log_with_entries(tmp_path / "audit.jsonl")
    assert log.verify_chain() == []
    assert [entry["seq"] for entry in log.entries()] == [0, 1, 2]


def test_an_edited_line_breaks_the_chain(tmp_path: Path) -> None:
    log = _log_with_entries(tmp_path / "audit.jsonl")
    lines = log.path.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["details"]["peer"] = "mallory"
    lines[1] = json.dumps(entry)
    log.path.write_text("\n".join(lines) + "\n")

    breaks = log.verify_chain()

    assert [item.line for item in breaks] == [2]
    assert "altered" in breaks[0].message


def test_a_removed_line_breaks_the_chain(tmp_path: Path) -> None:
    log = _log_with_entries(tmp_path / "audit.jsonl")
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join([lines[0], lines[2]]) + "\n")

    breaks = log.verify_chain()

    assert [item.line for item in breaks] == [2]
    assert "link broken" in breaks[0].message


def test_a_garbage_line_is_reported(tmp_path: Path) -> None:
    log = _log_with_entries(tmp_path / "audit.jsonl")
    with log.path.open("a") as handle:
        handle.write("not json\n")
    assert [item.line for item in log.verify_chain()] == [4]
