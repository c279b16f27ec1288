"""Roles, actions and principals: the one table saying which role may do what, and the one
question every surface asks ("may this principal do action A on data of projects P").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    """What a person (or an AE) is at a site."""

    ADMIN = "admin"
    RESEARCHER = "researcher"
    VIEWER = "viewer"
    UPLOADER = "uploader"


class Action(StrEnum):
    """Everything a surface asks permission for; DIMSE names (``find``, ``get``, ``move``)
    double as their DICOMweb equivalents (QIDO-RS is ``find``, WADO-RS is ``get``)."""

    ECHO = "echo"
    STORE = "store"
    FIND = "find"
    GET = "get"
    MOVE = "move"
    TRIGGER = "trigger"
    """Run a workflow on data of the principal's projects."""
    VIEW_RUNS = "view_runs"
    """See workflow runs and their results."""
    ADMINISTER = "administer"
    """Manage users and projects, edit Airflow connections and variables, read health details."""


ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.RESEARCHER: frozenset(
        {Action.ECHO, Action.FIND, Action.GET, Action.MOVE, Action.TRIGGER, Action.VIEW_RUNS}
    ),
    Role.VIEWER: frozenset({Action.ECHO, Action.FIND, Action.GET, Action.MOVE, Action.VIEW_RUNS}),
    Role.UPLOADER: frozenset({Action.ECHO, Action.STORE}),
}
"""What each role may do: the only place where roles turn into permissions."""

ALL_PROJECTS = "*"
"""A project entry meaning every project of the site (admins hold it implicitly)."""
DEFAULT_PROJECT = "default"
"""Where data lands that nobody assigned to a project."""

PrincipalKind = Literal["user", "ae", "anonymous"]


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user (local or OIDC), a calling AE, or an anonymous caller.

    ``projects`` keeps its order: new data goes to the first one. ``grants`` adds actions
    beyond the roles' (a known AE's explicit allow-list).
    """

    name: str
    kind: PrincipalKind
    roles: frozenset[Role] = frozenset()
    projects: tuple[str, ...] = ()
    grants: frozenset[Action] = field(default=frozenset())

    @property
    def actions(self) -> frozenset[Action]:
        """Every action the principal's roles and grants allow, on some project."""
        allowed = set(self.grants)
        for role in self.roles:
            allowed |= ROLE_ACTIONS[role]
        return frozenset(allowed)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    def can(self, action: Action) -> bool:
        """Whether the principal may do ``action`` at all (on at least one project)."""
        return action in self.actions

    def visible_projects(self, action: Action) -> frozenset[str] | None:
        """Projects whose data ``action`` may touch: ``None`` means all, empty means none."""
        if not self.can(action):
            return frozenset()
        if self.is_admin or ALL_PROJECTS in self.projects:
            return None
        return frozenset(self.projects)

    def may(self, action: Action, projects: Iterable[str]) -> bool:
        """May the principal do ``action`` on data belonging to ``projects`` (any one shared
        project suffices, as data of several projects is visible to members of each)?"""
        visible = self.visible_projects(action)
        if visible is None:
            return True
        return not visible.isdisjoint(projects)

    def store_project(self, wanted: str | None = None) -> str | None:
        """The project new data of this principal goes to: ``wanted`` if it may store there,
        else its first project (``default`` for admins); ``None`` when it may store nowhere."""
        if not self.can(Action.STORE):
            return None
        if wanted:
            return wanted if self.may(Action.STORE, [wanted]) else None
        if self.is_admin or ALL_PROJECTS in self.projects:
            return DEFAULT_PROJECT
        return self.projects[0] if self.projects else None


def principal(
    name: str,
    kind: PrincipalKind,
    roles: Iterable[Role | str] = (),
    projects: Iterable[str] = (),
    grants: Iterable[Action | str] = (),
) -> Principal:
    """A :class:`Principal` from plain strings (settings, JSON files, token claims)."""
    return Principal(
        name=name,
        kind=kind,
        roles=frozenset(Role(role) for role in roles),
        projects=tuple(dict.fromkeys(projects)),
        grants=frozenset(Action(action) for action in grants),
    )
