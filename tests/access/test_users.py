"""Local users: argon2id hashes in a 0600 file, add/list/remove/verify, bad input refused."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from openjip.access import Role, UserError, UserStore


def test_add_verify_list_remove(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "access")
    user = store.add("alice", "correct horse", "researcher", ["p1", "p2"])
    assert user.role is Role.RESEARCHER
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    stored = json.loads(store.path.read_text())["users"]["alice"]
    assert stored["hash"].startswith("$argon2id$")
    assert "correct horse" not in store.path.read_text()

    found = store.verify("alice", "correct horse")
    assert found is not None
    assert (found.name, found.kind, found.roles, found.projects) == (
        "alice",
        "user",
        {Role.RESEARCHER},
        ("p1", "p2"),
    )
    assert store.verify("alice", "wrong password") is None
    assert store.verify("nobody", "correct horse") is None
    assert [u.name for u in store.list()] == ["alice"]

    # Another store object (another process) sees the removal at once, even after a cached
    # verification.
    assert UserStore(store.directory).verify("alice", "correct horse") is not None
    UserStore(store.directory).remove("alice")
    assert store.verify("alice", "correct horse") is None
    assert store.list() == []


def test_default_project_and_bad_input(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "access")
    assert store.add("bob", "12345678", "viewer").projects == ("default",)
    with pytest.raises(UserError, match="exists"):
        store.add("bob", "12345678", "viewer")
    with pytest.raises(UserError, match="unknown role 'root'"):
        store.add("carol", "12345678", "root")
    with pytest.raises(UserError, match="shorter than 8"):
        store.add("carol", "short", "viewer")
    with pytest.raises(UserError, match="user name"):
        store.add("../etc", "12345678", "viewer")
    with pytest.raises(UserError, match="no user 'carol'"):
        store.remove("carol")
