"""Fixtures shared by every test: an isolated OPENJIP_HOME and settings built from it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openjip.config import Settings


@pytest.fixture
def openjip_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh OPENJIP_HOME for one test; no setting leaks in from the developer's machine."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("OPENJIP_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    yield home


@pytest.fixture
def settings(openjip_home: Path) -> Settings:
    """Settings of a local site living in ``openjip_home``."""
    return Settings()
