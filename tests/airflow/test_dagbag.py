"""The one DAG file in a real Airflow DagBag: every example spec becomes a DAG whose Params are
the spec's form, and an invalid spec becomes an import error naming it while the others load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag

from openjip.workflows.loader import PROJECT_WORKFLOWS, load_spec
from openjip.workflows.spec import SERIES_PARAM

DAG_FOLDER = PROJECT_WORKFLOWS.parent
EXAMPLES = sorted(PROJECT_WORKFLOWS.glob("*.yaml"))


@pytest.fixture
def dagbag(openjip_home: Path) -> DagBag:
    return DagBag(dag_folder=str(DAG_FOLDER))


def test_examples_import_without_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {path.stem for path in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_params_match_the_spec(dagbag: DagBag, path: Path) -> None:
    spec = load_spec(path)
    dag = dagbag.dags[spec.id]
    params = dag.params
    assert set(params.keys()) == {SERIES_PARAM, *spec.params}
    for name, param_spec in spec.params.items():
        param = params.get_param(name)
        schema = param.schema
        assert schema["type"] == param_spec.type
        assert schema.get("title") == param_spec.title
        assert param.description == param_spec.description
        assert schema.get("enum") == param_spec.enum
        assert schema.get("minimum") == param_spec.minimum
        assert schema.get("maximum") == param_spec.maximum
        assert params[name] == param_spec.default
    assert params.get_param(SERIES_PARAM).schema["type"] == "array"
    assert dag.dag_display_name == spec.title
    assert {step.name for step in spec.steps} <= set(dag.task_ids)
    assert "select_series" in dag.task_ids


def test_invalid_site_spec_is_an_import_error_naming_it(openjip_home: Path) -> None:
    site_workflows = openjip_home / "workflows"
    site_workflows.mkdir()
    good = yaml.safe_load((PROJECT_WORKFLOWS / "ct-body-mask.yaml").read_text())
    good["id"] = "site-body-mask"
    (site_workflows / "site-body-mask.yaml").write_text(yaml.safe_dump(good))
    bad = dict(good, id="cyclic")
    bad["steps"] = [
        dict(good["steps"][0], name="a", depends_on=["b"]),
        dict(good["steps"][0], name="b", depends_on=["a"]),
    ]
    (site_workflows / "cyclic.yaml").write_text(yaml.safe_dump(bad))
    unknown = dict(good, id="unknown-operator")
    unknown["steps"] = [dict(good["steps"][0], operator="nope@1.0.0")]
    (site_workflows / "unknown-operator.yaml").write_text(yaml.safe_dump(unknown))

    dagbag = DagBag(dag_folder=str(DAG_FOLDER))

    assert set(dagbag.dag_ids) == {path.stem for path in EXAMPLES} | {"site-body-mask"}
    [message] = dagbag.import_errors.values()
    assert "cyclic.yaml" in message and "cycle in depends_on: a → b → a" in message
    assert "unknown-operator.yaml" in message and "operator nope@1.0.0 not found" in message
    assert "site-body-mask" not in message
