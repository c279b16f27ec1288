"""``OpenjipUser``: the Airflow user an openjip principal becomes (shared by the auth manager
and its login app)."""

from __future__ import annotations

import functools

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

from openjip.access import Principal, principal


class OpenjipUser(BaseUser):
    """An Airflow user made from an openjip principal: its name, roles and projects."""

    def __init__(self, name: str, roles: list[str], projects: list[str]) -> None:
        self.name = name
        self.roles = sorted(roles)
        self.projects = list(projects)

    @classmethod
    def of(cls, who: Principal) -> OpenjipUser:
        return cls(who.name, [str(role) for role in who.roles], list(who.projects))

    @functools.cached_property
    def principal(self) -> Principal:
        return principal(self.name, "user", self.roles, self.projects)

    def get_id(self) -> str:
        return self.name

    def get_name(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OpenjipUser) and (self.name, self.roles, self.projects) == (
            other.name,
            other.roles,
            other.projects,
        )

    def __hash__(self) -> int:
        return hash(self.name)
