"""Project names (short, plain identifiers: they end up in index rows, audit lines and claims),
and the projects of each study kept beside the images in the object store, so that
``openjip index rebuild`` gives every study its projects back.

:class:`ProjectMarkers`: one empty object ``projects/<StudyInstanceUID>/<project>`` per project a
study belongs to. Adding a study to a project is one idempotent PUT (two processes adding
different projects at the same moment cannot lose one); moving it replaces its markers. Ingest
writes the markers of the projects a study arrives in (once a minute at most per study and
projects in a process), the admin routes and ``openjip project`` after every change; a study
without markers (stored before they existed) stays in ``default`` on rebuild.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from openjip.access.expiring import ExpiringTable

if TYPE_CHECKING:  # the federation service imports this module and must not reach the store
    from openjip.storage.base import ObjectStore

_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MARKERS_PREFIX = "projects/"
REMEMBER_SECONDS = 60.0
"""How long a process trusts the markers it wrote (another may move the study meanwhile)."""


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


class ProjectMarkers:
    """The projects of studies as markers in ``store`` (see the module docstring)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._written: ExpiringTable[bool] = ExpiringTable(REMEMBER_SECONDS)

    def add(self, study: str, projects: Sequence[str]) -> None:
        """The study belongs to ``projects`` (as well as to those it had)."""
        remembered = f"{study}/{','.join(projects)}"
        if self._written.get(remembered):
            return
        for project in projects:
            self.store.put(f"{MARKERS_PREFIX}{study}/{project}", b"")
        self._written.put(True, key=remembered)

    def replace(self, study: str, projects: Sequence[str]) -> None:
        """The study belongs to ``projects`` only."""
        for project in projects:
            self.store.put(f"{MARKERS_PREFIX}{study}/{project}", b"")
        for info in list(self.store.list(f"{MARKERS_PREFIX}{study}/")):
            if info.key.rsplit("/", 1)[-1] not in projects:
                self.store.delete(info.key)

    def all(self) -> dict[str, list[str]]:
        """StudyInstanceUID -> its projects, for every study with markers."""
        found: dict[str, list[str]] = {}
        for info in self.store.list(MARKERS_PREFIX):
            study, _, project = info.key[len(MARKERS_PREFIX) :].partition("/")
            if study and project and "/" not in project:
                found.setdefault(study, []).append(project)
        return found
