"""The audit log's hash chain detects an edited, removed or reordered line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from openjip.federation.audit import AUDIT_FORMAT, GENESIS, AuditLog
from openjip.federation.canonical import canonical_json, legacy_json


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


def test_entries_name_their_format_and_old_entries_verify_by_theirs(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    # An entry as format 1 wrote it: no format field, hashed over sorted-key json.dumps.
    old = {"seq": 0, "time": 1.5, "event": "init", "details": {"x": 1.0}, "prev": GENESIS}
    old["hash"] = hashlib.sha256(legacy_json(old)).hexdigest()
    log.path.write_text(json.dumps(old) + "\n")

    new = log.append("publish", workflow_id="w", sequence=1)

    assert new["format"] == AUDIT_FORMAT and new["prev"] == old["hash"]
    assert log.verify_chain() == []
    lines = log.path.read_text().splitlines()
    future = {**json.loads(lines[1]), "format": "openjip-audit/99"}
    log.path.write_text("\n".join([lines[0], json.dumps(future)]) + "\n")
    assert "unknown entry format" in log.verify_chain()[0].message


def test_canonical_json_is_rfc_8785() -> None:
    # RFC 8785 section 3.2.2.3 number forms; json.dumps writes 1.0, 1e-07, -0.0.
    assert canonical_json({"b": 1.0, "a": [1e21, 1e-7, -0.0]}) == b'{"a":[1e+21,1e-7,0],"b":1}'
    # Keys are ordered by UTF-16 code units: U+1F600 (surrogates D83D DE00) before U+FB33,
    # the reverse of code-point order that sort_keys would give.
    assert canonical_json({"\ufb33": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\ufb33":1}'.encode()
