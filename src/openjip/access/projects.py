"""Project names: short, plain identifiers (they end up in index rows, audit lines and claims)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_project_names(projects: Iterable[str]) -> list[str]:
    """``projects`` without repeats, or ``ValueError`` naming the first bad one."""
    names = list(dict.fromkeys(projects))
    for name in names:
        if not _PROJECT.match(name):
            raise ValueError(
                f"project name {name!r}: 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
    return names
