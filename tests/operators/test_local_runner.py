"""run_operator_locally: the contract from the runner's side, with real processes."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from openjip.operators import (
    LoadedOperator,
    ParamError,
    StepFailed,
    load_operator,
    run_operator_locally,
)
from openjip.sdk import Progress


def make_operator(root: Path, code: str, *, command: list[str] | None = None) -> LoadedOperator:
    """An operator folder whose main.py is ``code``."""
    folder = root / "op"
    folder.mkdir()
    manifest = {
        "name": "probe",
        "version": "0.1.0",
        "description": "Test operator.",
        "image": "registry.example.org/probe:0.1.0",
        "command": command or ["python", "main.py"],
        "input": {"kind": "dicom-series"},
        "output": {"kind": "json"},
        "params": {"level": {"type": "integer", "default": 1, "minimum": 0}},
    }
    (folder / "operator.yaml").write_text(yaml.safe_dump(manifest))
    (folder / "main.py").write_text(textwrap.dedent(code))
    return load_operator(folder)


@pytest.fixture
def input_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(b"not really")
    return folder


def test_success_streams_progress_and_logs_and_lists_outputs(
    tmp_path: Path, input_dir: Path
) -> None:
    operator = make_operator(
        tmp_path,
        """
        from openjip import sdk

        def main():
            for step in range(3):
                sdk.progress((step + 1) / 3, f"part {step + 1}")
            sdk.log.info("level is %s", sdk.params()["level"])
            (sdk.output_dir() / "sub").mkdir()
            (sdk.output_dir() / "sub" / "result.json").write_text("{}")
            (sdk.output_dir() / "b.csv").write_text("x\\n")

        sdk.run(main)
        """,
    )
    progress: list[Progress] = []
    logs: list[tuple[str, str]] = []
    result = run_operator_locally(
        operator,
        input_dir,
        tmp_path / "out",
        {"level": "5"},
        on_progress=progress.append,
        on_log=lambda stream, line: logs.append((stream, line)),
    )
    assert [p.message for p in progress] == ["part 1", "part 2", "part 3"]
    assert progress[-1].fraction == 1.0
    assert ("stderr", "INFO level is 5") in logs
    assert result.files == [Path("b.csv"), Path("sub/result.json")]
    assert result.paths()[1] == (tmp_path / "out" / "sub" / "result.json").resolve()
    assert result.operator == "probe@0.1.0"


def test_operator_sees_the_contract_and_not_the_site_settings(
    tmp_path: Path, input_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENJIP_STORAGE__S3_SECRET_KEY", "do-not-leak")
    operator = make_operator(
        tmp_path,
        """
        import json, os, sys
        from openjip import sdk

        def main():
            seen = {k: v for k, v in os.environ.items() if k.startswith("OPENJIP_")}
            seen["cwd"] = os.getcwd()
            seen["first_path"] = os.environ["PATH"].split(os.pathsep)[0]
            (sdk.output_dir() / "env.json").write_text(json.dumps(seen))

        sdk.run(main)
        """,
    )
    run_operator_locally(operator, input_dir, tmp_path / "out")
    seen = json.loads((tmp_path / "out" / "env.json").read_text())
    assert set(seen) - {"cwd", "first_path"} == {
        "OPENJIP_STEP_INPUT",
        "OPENJIP_STEP_OUTPUT",
        "OPENJIP_STEP_PARAMS",
        "OPENJIP_OPERATOR",
    }
    assert json.loads(seen["OPENJIP_STEP_PARAMS"]) == {"level": 1}
    assert seen["OPENJIP_OPERATOR"] == "probe@0.1.0"
    assert seen["cwd"] == str(operator.directory)
    assert seen["first_path"] == str(Path(sys.executable).parent)


def test_failing_operator_fails_with_its_message(tmp_path: Path, input_dir: Path) -> None:
    operator = make_operator(
        tmp_path,
        """
        from openjip import sdk

        def main():
            sdk.log.info("looking for lungs")
            sdk.fail("no lungs found in series 1.2.3")

        sdk.run(main)
        """,
    )
    with pytest.raises(StepFailed) as caught:
        run_operator_locally(operator, input_dir, tmp_path / "out")
    assert caught.value.message == "no lungs found in series 1.2.3"
    assert caught.value.returncode == 1
    assert "INFO looking for lungs" in caught.value.log_tail


def test_crash_without_the_sdk_reports_the_last_stderr_line(
    tmp_path: Path, input_dir: Path
) -> None:
    operator = make_operator(
        tmp_path,
        """
        import sys
        print("working")
        print("Error: disk full", file=sys.stderr)
        print("", file=sys.stderr)
        sys.exit(3)
        """,
    )
    with pytest.raises(StepFailed) as caught:
        run_operator_locally(operator, input_dir, tmp_path / "out")
    assert caught.value.message == "Error: disk full"
    assert caught.value.returncode == 3


def test_silent_failure_names_the_exit_code(tmp_path: Path, input_dir: Path) -> None:
    operator = make_operator(tmp_path, "import sys\nsys.exit(4)\n")
    with pytest.raises(StepFailed, match=r"probe@0\.1\.0 exited with code 4"):
        run_operator_locally(operator, input_dir, tmp_path / "out")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _gone_soon(pid: int) -> bool:
    """Whether the process ends within seconds: SIGKILL returns before the killed process has
    run its exit, so right after the step one may still see it exiting."""
    deadline = time.monotonic() + 10
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_timeout_stops_the_whole_process_group(tmp_path: Path, input_dir: Path) -> None:
    operator = make_operator(
        tmp_path,
        """
        import os, subprocess, time
        child = subprocess.Popen(["sleep", "300"])
        out = os.environ["OPENJIP_STEP_OUTPUT"]
        with open(os.path.join(out, "pids"), "w") as fh:
            fh.write(f"{os.getpid()} {child.pid}")
        time.sleep(300)
        """,
    )
    with pytest.raises(StepFailed, match="timed out after 8 s") as caught:
        run_operator_locally(operator, input_dir, tmp_path / "out", timeout=8)
    assert caught.value.returncode is None
    pids = [int(p) for p in (tmp_path / "out" / "pids").read_text().split()]
    assert all(_gone_soon(pid) for pid in pids)


def test_command_that_cannot_start(tmp_path: Path, input_dir: Path) -> None:
    operator = make_operator(tmp_path, "", command=["no-such-binary-here", "main.py"])
    with pytest.raises(StepFailed, match="cannot start"):
        run_operator_locally(operator, input_dir, tmp_path / "out")


def test_bad_params_are_rejected_before_starting(tmp_path: Path, input_dir: Path) -> None:
    operator = make_operator(tmp_path, "raise SystemExit('must not run')\n")
    with pytest.raises(ParamError, match="level: -1 is below the minimum 0"):
        run_operator_locally(operator, input_dir, tmp_path / "out", {"level": -1})
    assert not (tmp_path / "out").exists()


def test_missing_input_folder(tmp_path: Path) -> None:
    operator = make_operator(tmp_path, "")
    with pytest.raises(StepFailed, match="does not exist"):
        run_operator_locally(operator, tmp_path / "nowhere", tmp_path / "out")


def test_output_folder_must_be_empty(tmp_path: Path, input_dir: Path) -> None:
    operator = make_operator(tmp_path, "")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.json").write_text("{}")
    with pytest.raises(StepFailed, match="is not empty"):
        run_operator_locally(operator, input_dir, tmp_path / "out")


def test_children_left_behind_do_not_outlive_the_step(tmp_path: Path, input_dir: Path) -> None:
    operator = make_operator(
        tmp_path,
        """
        import os, subprocess
        # A child that ignores SIGTERM and holds stdout open after the operator exits.
        child = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 300"])
        with open(os.path.join(os.environ["OPENJIP_STEP_OUTPUT"], "pid"), "w") as fh:
            fh.write(str(child.pid))
        """,
    )
    run_operator_locally(operator, input_dir, tmp_path / "out")
    assert _gone_soon(int((tmp_path / "out" / "pid").read_text()))
