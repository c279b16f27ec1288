"""docs/configuration.md is exactly what the settings model generates: every setting documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from openjip.config.docs import DOCS_PATH, REGENERATE_COMMAND, main, render
from openjip.config.settings import Settings


def test_configuration_page_matches_the_settings_model() -> None:
    assert DOCS_PATH.exists(), f"docs/configuration.md is missing: run `{REGENERATE_COMMAND}`"
    assert DOCS_PATH.read_text() == render(), (
        f"docs/configuration.md is out of date with the settings model: run `{REGENERATE_COMMAND}`"
    )


def test_every_setting_appears_with_its_environment_variable() -> None:
    page = render()
    for name, field in Settings.model_fields.items():
        sub_fields = getattr(field.annotation, "model_fields", None)
        if sub_fields is None:
            assert f"`OPENJIP_{name.upper()}`" in page
        else:
            for sub in sub_fields:
                assert f"`OPENJIP_{name.upper()}__{sub.upper()}`" in page


def test_check_reports_a_stale_page_and_the_command_to_run(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text("# Configuration\n\nstale\n")
    result = subprocess.run(
        [sys.executable, "-m", "openjip.config.docs", "--check", "--output", str(page)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert REGENERATE_COMMAND in result.stderr
    assert main(["--output", str(page)]) == 0
    assert main(["--check", "--output", str(page)]) == 0
    assert page.read_text() == render()
