"""``openjip user add|list|remove`` and ``openjip audit`` as users type them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from openjip.access import AccessAudit, UserStore, principal
from openjip.config import Settings

OPENJIP = str(Path(sys.executable).with_name("openjip"))


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENJIP, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def test_user_add_list_remove(settings: Settings) -> None:
    added = run(
        "user", "add", "alice", "--role", "researcher", "--project", "p1", "--project", "p2",
        "--password-stdin", stdin="s3cret-pass\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert UserStore(settings.access_dir).verify("alice", "s3cret-pass") is not None

    listed = run("user", "list", "--json")
    assert listed.returncode == 0
    (alice,) = json.loads(listed.stdout)
    assert (alice["name"], alice["role"], alice["projects"]) == (
        "alice",
        "researcher",
        ["p1", "p2"],
    )
    assert "s3cret" not in listed.stdout and "argon2" not in listed.stdout

    assert run("user", "remove", "alice").returncode == 0
    assert json.loads(run("user", "list", "--json").stdout) == []


def test_user_errors_are_messages_with_exit_codes(settings: Settings) -> None:
    bad_role = run("user", "add", "bob", "--role", "root", "--password-stdin", stdin="12345678\n")
    assert bad_role.returncode == 2 and "unknown role 'root'" in bad_role.stderr
    no_stdin = run("user", "add", "bob", "--role", "viewer")
    assert no_stdin.returncode == 2 and "--password-stdin" in no_stdin.stderr
    short = run("user", "add", "bob", "--role", "viewer", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "shorter than 8" in short.stderr
    missing = run("user", "remove", "nobody")
    assert missing.returncode == 1 and "no user 'nobody'" in missing.stderr
    for result in (bad_role, no_stdin, short, missing):
        assert "Traceback" not in result.stderr


def test_audit_prints_the_log(settings: Settings) -> None:
    audit = AccessAudit(settings.access_audit_path)
    audit.record(principal("vera", "user", ["viewer"], ["p1"]), "get", "allowed", study="1.2.3")
    audit.record(principal("CT1", "ae"), "store", "stored", study="1.2.4", surface="dimse")
    as_json = run("audit", "--json")
    assert as_json.returncode == 0
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(e["who"], e["kind"], e["study"]) for e in lines] == [
        ("vera", "user", "1.2.3"),
        ("CT1", "ae", "1.2.4"),
    ]
    table = run("audit", "--limit", "1")
    assert "CT1" in table.stdout and "vera" not in table.stdout


def test_project_add_and_move_study(settings: Settings) -> None:
    from pydicom.data import get_testdata_file

    from openjip.index import Query, open_index
    from openjip.ingest import Ingestor
    from openjip.storage import open_store

    index = open_index(settings)
    try:
        record = (
            Ingestor(open_store(settings), index)
            .ingest_file(Path(str(get_testdata_file("CT_small.dcm"))), source_ae="TEST")
            .record
        )
    finally:
        index.close()
    study = record.StudyInstanceUID
    assert run("project", "add-study", "lung", study).returncode == 0
    moved = run("project", "move-study", "heart", study)
    assert moved.returncode == 0, moved.stderr
    index = open_index(settings)
    try:
        (found,) = index.find_studies(Query(StudyInstanceUID=[study]))
    finally:
        index.close()
    assert found.projects == ["heart"]
    missing = run("project", "add-study", "lung", "1.2.3.4")
    assert missing.returncode == 1 and "no such study: 1.2.3.4" in missing.stderr
    bad = run("project", "add-study", "no spaces", study)
    assert bad.returncode == 2 and "project name" in bad.stderr
    assert [e["action"] for e in AccessAudit(settings.access_audit_path).entries()] == [
        "add_study",
        "move_study",
    ]
