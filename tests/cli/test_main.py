"""The console script answers at once: importing it, listing its commands and querying the
index load none of the heavy dependencies only other commands need; every command still shows
its own help with an example, and the listing's summaries are the commands' own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from openjip.cli.main import COMMANDS, app, load_command

HEAVY = (
    "pydicom",
    "pynetdicom",
    "httpx",
    "airflow",
    "opensearchpy",
    "openjip.federation",
    "openjip.receiver",
    "openjip.web",
    "openjip.dicom",
    "openjip.ingest",
    "openjip.workflows",
    "rich.markdown",
)
"""Modules that neither ``import openjip.cli.main``, ``openjip --help`` nor ``openjip query
studies`` may load: each belongs to other commands (or, for rich.markdown, to Typer's rich help
formatter, which openjip does not use)."""

runner = CliRunner()


def loaded_heavy_modules(
    run: str, env: dict[str, str] | None = None, heavy: tuple[str, ...] = HEAVY
) -> list[str]:
    """The modules of ``heavy`` in ``sys.modules`` after running ``run`` in a fresh
    interpreter (as the console script starts)."""
    code = (
        "import json, sys\n"
        f"{run}\n"
        f"heavy = {heavy!r}\n"
        "loaded = sorted(m for m in heavy if any(n == m or n.startswith(m + '.')"
        " for n in sys.modules))\n"
        "print(json.dumps(loaded), file=sys.__stderr__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )
    assert result.stderr.strip(), result.stdout
    loaded: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return loaded


def test_importing_the_console_script_loads_no_heavy_module() -> None:
    assert loaded_heavy_modules("import openjip.cli.main") == []


def test_the_command_list_loads_no_command() -> None:
    run = (
        "from openjip.cli.main import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
        "assert 'openjip.cli.query' not in sys.modules and 'pydantic' not in sys.modules"
    )
    assert loaded_heavy_modules(run) == []


def test_query_studies_loads_only_what_a_query_needs(tmp_path: Path) -> None:
    run = (
        "from openjip.cli.main import app\n"
        "try:\n"
        "    app(['query', 'studies', '--json'])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code"
    )
    assert loaded_heavy_modules(run, {"OPENJIP_HOME": str(tmp_path)}) == []


@pytest.mark.parametrize(
    "options", [["--json"], ["--limit", "3", "--format", "csv", "--study-uid", "1.2"]]
)
def test_query_studies_reads_its_settings_and_options_without_pydantic(
    tmp_path: Path, options: list[str]
) -> None:
    """The index's place comes from the environment alone (openjip.config.light); Typer (below
    0.21) converts options with click's types, not pydantic."""
    run = (
        "from openjip.cli.main import app\n"
        "try:\n"
        f"    app(['query', 'studies', *{options!r}])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code"
    )
    env = {"OPENJIP_HOME": str(tmp_path)}
    assert loaded_heavy_modules(run, env, ("pydantic", "pydantic_settings", "pydantic_core")) == []


def test_the_list_shows_every_command_with_its_own_summary() -> None:
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for name, command in COMMANDS.items():
        assert load_command(name).get_short_help_str(limit=1000) == command.summary, name
        assert f"  {name} " in result.stdout and command.summary in result.stdout, name


def leaf_commands(command: Any, path: list[str]) -> Iterator[list[str]]:
    """The argument path of every command below ``command`` that runs something."""
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield path
        return
    for name, sub in subcommands.items():
        yield from leaf_commands(sub, [*path, name])


@pytest.mark.parametrize("name", ["version", *COMMANDS])
def test_every_command_has_an_example_in_its_help(name: str) -> None:
    paths = list(leaf_commands(load_command(name), [name])) if name in COMMANDS else [[name]]
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example: openjip " in result.stdout or "Example: OPENJIP_" in result.stdout, path


def test_an_unknown_command_is_a_usage_error() -> None:
    result = runner.invoke(app, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.output
