"""The quick read of the index's place says what the full settings say, or nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from openjip.config import Settings
from openjip.config.light import sqlite_index_path

ANSWERED = [
    {},
    {"OPENJIP_HOME": "/srv/site"},
    {"openjip_home": "~/elsewhere"},
    {"OPENJIP_HOME": "/srv/site", "OPENJIP_INDEX__PATH": "/data/index.db"},
    {"OPENJIP_INDEX__BACKEND": "sqlite", "OPENJIP_RECEIVER__PORT": "11113"},
]
LEFT_TO_THE_MODEL = [
    {"OPENJIP_INDEX__BACKEND": "opensearch"},
    {"OPENJIP_INDEX": '{"backend": "opensearch"}'},
    {"OPENJIP_INDEX__OPENSEARCH_URL": "http://x:9200"},
    {"OPENJIP_HOME": ""},
    {"OPENJIP_INDEX__PATH": ""},
]


@pytest.mark.parametrize("environ", ANSWERED)
def test_the_quick_read_agrees_with_the_settings(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.upper().startswith("OPENJIP")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert sqlite_index_path(environ) == Settings().index_path


def test_other_sections_are_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    environ = {"OPENJIP_HOME": str(tmp_path), "OPENJIP_RECEIVER__PORT": "not-a-port"}
    assert sqlite_index_path(environ) == tmp_path / "index.sqlite3"


@pytest.mark.parametrize("environ", LEFT_TO_THE_MODEL)
def test_anything_else_is_left_to_the_settings_model(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert sqlite_index_path(environ) is None


def test_a_dotenv_file_is_left_to_the_settings_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OPENJIP_INDEX__PATH=/from/dotenv.db\n")
    assert sqlite_index_path({}) is None
    assert Settings().index_path == Path("/from/dotenv.db")
