"""openjip.sdk inside an operator: reading the contract's environment, reporting on the streams."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from openjip import sdk
from openjip.sdk.contract import format_error, format_progress, parse_error, parse_progress


@pytest.fixture
def step_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Input and output folders in the environment, as a runner sets them."""
    (tmp_path / "in").mkdir()
    monkeypatch.setenv(sdk.INPUT_ENV, str(tmp_path / "in"))
    monkeypatch.setenv(sdk.OUTPUT_ENV, str(tmp_path / "out"))
    monkeypatch.setenv(sdk.PARAMS_ENV, json.dumps({"target": "lungs", "n": 2}))
    monkeypatch.setenv(sdk.OPERATOR_ENV, "demo@1.0.0")
    return tmp_path


def test_flat_input_is_one_series(step_env: Path) -> None:
    (step_env / "in" / "a.dcm").write_bytes(b"x")
    (step_env / "in" / ".hidden").write_bytes(b"x")
    [only] = sdk.inputs()
    assert not only.nested
    assert [p.name for p in only.files()] == ["a.dcm"]
    assert only.output_dir() == step_env / "out"


def test_one_subfolder_per_series(step_env: Path) -> None:
    for series in ("1.2.3", "1.2.4"):
        (step_env / "in" / series / "sub").mkdir(parents=True)
        (step_env / "in" / series / "sub" / "x.dcm").write_bytes(b"x")
    found = sdk.inputs()
    assert [i.name for i in found] == ["1.2.3", "1.2.4"]
    assert [p.name for p in found[0].files()] == ["x.dcm"]
    assert found[1].output_dir() == step_env / "out" / "1.2.4"
    assert (step_env / "out" / "1.2.4").is_dir()


def test_params_and_identity(step_env: Path) -> None:
    assert sdk.params() == {"target": "lungs", "n": 2}
    assert sdk.operator() == sdk.OperatorIdentity("demo", "1.0.0")


def test_params_must_be_an_object(step_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sdk.PARAMS_ENV, "[1]")
    with pytest.raises(sdk.StepError, match="must be a JSON object"):
        sdk.params()


def test_missing_environment_says_how_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sdk.INPUT_ENV, raising=False)
    with pytest.raises(sdk.StepError, match="openjip operator run"):
        sdk.inputs()


def test_progress_line_round_trips(capsys: pytest.CaptureFixture[str]) -> None:
    sdk.progress(1.7, "slice 3/4")
    line = capsys.readouterr().out.strip()
    assert parse_progress(line) == sdk.Progress(1.0, "slice 3/4")
    assert parse_progress("plain log line") is None
    assert parse_progress(format_progress(0.25)) == sdk.Progress(0.25, "")
    assert parse_error(format_error("no CT")) == "no CT"


def test_run_turns_failure_into_exit_code_and_message(capsys: pytest.CaptureFixture[str]) -> None:
    def main() -> None:
        sdk.fail("no lungs in this series")

    with pytest.raises(SystemExit) as caught:
        sdk.run(main)
    assert caught.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == format_error(
        "no lungs in this series"
    )


def test_run_reports_a_crash_with_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    def main() -> None:
        raise KeyError("target")

    with pytest.raises(SystemExit) as caught:
        sdk.run(main)
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert parse_error(err.strip().splitlines()[-1]) == "KeyError: 'target'"


def test_run_exits_zero_on_success() -> None:
    with pytest.raises(SystemExit) as caught:
        sdk.run(lambda: None)
    assert caught.value.code == 0


def _imported_modules(source: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def test_sdk_imports_only_the_standard_library() -> None:
    """Operator images carry the sdk alone: it must not pull in openjip's services."""
    for source in Path(sdk.__file__).parent.glob("*.py"):
        for name in _imported_modules(source):
            top = name.split(".")[0]
            allowed = top in sys.stdlib_module_names or name.startswith("openjip.sdk")
            assert allowed or name == "__future__", f"{source.name} imports {name}"
