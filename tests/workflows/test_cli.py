"""``openjip workflow`` without Airflow: validate, list, and the clear refusals of trigger."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from openjip.cli.main import app
from openjip.workflows.loader import PROJECT_WORKFLOWS

runner = CliRunner()


def test_validate_a_valid_spec() -> None:
    result = runner.invoke(
        app, ["workflow", "validate", str(PROJECT_WORKFLOWS / "ct-body-mask.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "ct-body-mask 1.0.0 is valid" in result.output


def test_validate_names_every_error_with_its_path(tmp_path: Path) -> None:
    doc = yaml.safe_load((PROJECT_WORKFLOWS / "ct-body-mask.yaml").read_text())
    del doc["title"]
    doc["params"]["body_threshold_hu"]["default"] = "cold"
    doc["steps"][0]["depends_on"] = ["nowhere"]
    spec = tmp_path / "broken.yaml"
    spec.write_text(yaml.safe_dump(doc))
    result = runner.invoke(app, ["workflow", "validate", str(spec)])
    assert result.exit_code == 2
    assert "title: Field required" in result.output
    assert "params.body_threshold_hu.default: 'cold' is not of type number" not in result.output
    # Structural errors come first; cross-field checks run once the structure is sound.
    doc["title"] = "Broken"
    spec.write_text(yaml.safe_dump(doc))
    result = runner.invoke(app, ["workflow", "validate", str(spec)])
    assert result.exit_code == 2
    assert "params.body_threshold_hu.default: 'cold' is not of type number" in result.output
    assert "steps[0].depends_on[0]: unknown step 'nowhere'" in result.output


def test_list_shows_workflows_and_rejected_specs(openjip_home: Path) -> None:
    site = openjip_home / "workflows"
    site.mkdir()
    (site / "bad.yaml").write_text("id: bad\nversion: 1.0.0\ntitle: Bad\nsteps: []\n")
    result = runner.invoke(app, ["workflow", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert {row["id"] for row in listed["workflows"]} == {
        "convert-to-nifti",
        "ct-body-mask",
        "ct-lung-mask-by-query",
        "deidentify-series",
    }
    [rejected] = listed["rejected"]
    assert rejected["path"].endswith("bad.yaml")
    assert any(line.startswith("steps:") for line in rejected["errors"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["no-such-workflow", "--series", "1.2"], "no workflow 'no-such-workflow'"),
        (["ct-body-mask"], "needs at least one --series"),
        (["ct-body-mask", "--series", "1.2", "--param", "target=liver"], "not one of"),
        (["ct-body-mask", "--series", "1.2", "--param", "colour=red"], "NAME one of"),
        (["ct-body-mask", "--series", "1.2", "--param", "body_threshold_hu=warm"], "--param"),
        (["ct-body-mask", "--series", "1.2.3.4.5"], "not in the index: 1.2.3.4.5"),
    ],
)
def test_trigger_refuses_bad_input_clearly(
    openjip_home: Path, arguments: list[str], message: str
) -> None:
    result = runner.invoke(app, ["workflow", "trigger", *arguments])
    assert result.exit_code == 2
    assert message in result.output


def test_trigger_says_when_airflow_is_unreachable(
    openjip_home: Path, monkeypatch: pytest.MonkeyPatch, ct_phantom: list[Path], ingest
) -> None:
    [uid] = ingest(ct_phantom)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPENJIP_AIRFLOW__PORT", str(port))
    monkeypatch.setenv("OPENJIP_AIRFLOW__PASSWORD", "secret")
    result = runner.invoke(app, ["workflow", "trigger", "ct-body-mask", "--series", uid])
    assert result.exit_code == 1
    assert f"127.0.0.1:{port}" in result.output and "unreachable" in result.output
