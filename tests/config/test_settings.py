"""The settings model reads nested OPENJIP_ variables and resolves paths under OPENJIP_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from openjip.config import Settings


def test_defaults_live_under_home(openjip_home: Path) -> None:
    settings = Settings()
    assert settings.receiver.port == 11112
    assert settings.receiver.ae_title == "OPENJIP"
    assert settings.storage_path == openjip_home / "objects"
    assert settings.index_path == openjip_home / "index.sqlite3"


def test_nested_environment_variables(openjip_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENJIP_RECEIVER__PORT", "4242")
    monkeypatch.setenv(
        "OPENJIP_RECEIVER__MOVE_DESTINATIONS", '{"PACS": {"host": "127.0.0.1", "port": 104}}'
    )
    settings = Settings()
    assert settings.receiver.port == 4242
    assert settings.receiver.move_destinations["PACS"].port == 104
