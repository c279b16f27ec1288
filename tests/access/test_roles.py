"""The role table and the one question every surface asks of a principal."""

from __future__ import annotations

import pytest

from openjip.access import ROLE_ACTIONS, Action, Role, principal


def test_every_role_has_a_row_and_only_admins_administer() -> None:
    assert set(ROLE_ACTIONS) == set(Role)
    assert ROLE_ACTIONS[Role.ADMIN] == frozenset(Action)
    for role in (Role.RESEARCHER, Role.VIEWER, Role.UPLOADER):
        assert Action.ADMINISTER not in ROLE_ACTIONS[role]


@pytest.mark.parametrize(
    ("role", "reads", "stores", "triggers"),
    [
        ("admin", True, True, True),
        ("researcher", True, False, True),
        ("viewer", True, False, False),
        ("uploader", False, True, False),
    ],
)
def test_roles_on_their_own_and_other_projects(
    role: str, reads: bool, stores: bool, triggers: bool
) -> None:
    user = principal("u", "user", [role], ["p1"])
    assert user.may(Action.FIND, ["p1"]) is reads
    assert user.may(Action.GET, ["p1", "p9"]) is reads
    assert user.may(Action.STORE, ["p1"]) is stores
    assert user.may(Action.TRIGGER, ["p1"]) is triggers
    other_project_allowed = role == "admin"
    assert user.may(Action.FIND, ["p2"]) is (reads and other_project_allowed)
    assert user.may(Action.STORE, ["p2"]) is (stores and other_project_allowed)


def test_visible_and_store_projects() -> None:
    admin = principal("a", "user", ["admin"])
    assert admin.visible_projects(Action.FIND) is None
    assert admin.store_project() == "default"
    viewer = principal("v", "user", ["viewer"], ["p2", "p1"])
    assert viewer.visible_projects(Action.FIND) == {"p1", "p2"}
    assert viewer.visible_projects(Action.STORE) == frozenset()
    assert viewer.store_project() is None
    uploader = principal("u", "user", ["uploader"], ["p2", "p1"])
    assert uploader.store_project() == "p2"  # the first project
    assert uploader.store_project("p1") == "p1"
    assert uploader.store_project("p3") is None
    everywhere = principal("r", "user", ["viewer"], ["*"])
    assert everywhere.may(Action.GET, ["anything"])


def test_grants_add_explicit_actions_for_an_ae() -> None:
    scanner = principal("CT1", "ae", [], ["p1"], grants=["echo", "store", "find"])
    assert scanner.may(Action.FIND, ["p1"])
    assert not scanner.may(Action.GET, ["p1"])
    assert scanner.store_project() == "p1"
