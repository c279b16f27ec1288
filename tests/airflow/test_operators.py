"""The operators of workflow DAGs called as Airflow calls them, with a real index and a real
operator subprocess: series selection (form or index query) and a failing step's message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException
from pydicom.data import get_testdata_file

from openjip.airflow.operators import AnalysisOperator, SelectSeriesOperator
from openjip.workflows.spec import InputSpec

FAILING = """\
name: always-fails
version: 1.0.0
description: Fails with the message it is given.
image: example.org/always-fails:1.0.0
command: [python, main.py]
input: {kind: dicom-series}
output: {kind: json}
params:
  message: {type: string, default: "nothing to see"}
"""


def _select(input_spec: InputSpec, params: dict[str, object]) -> list[str]:
    operator = SelectSeriesOperator(
        task_id="select_series", input_spec=input_spec.model_dump(mode="json")
    )
    return operator.execute({"params": params})


def test_series_from_the_form_win(openjip_home: Path) -> None:
    chosen = _select(InputSpec(kind="query"), {"series": [" 1.2.3 ", "", "1.2.4"]})
    assert chosen == ["1.2.3", "1.2.4"]


def test_explicit_input_without_series_is_refused(openjip_home: Path) -> None:
    with pytest.raises(AirflowException, match="no series selected"):
        _select(InputSpec(kind="series"), {"series": []})


def test_query_input_finds_series_in_the_index(
    ingest: Callable[[list[Path]], list[str]], ct_phantom: list[Path]
) -> None:
    [phantom] = ingest(ct_phantom)
    [small] = ingest([Path(get_testdata_file("CT_small.dcm"))])
    spec = InputSpec(kind="query", query={"Modality": "{{ params.modality }}"})
    assert sorted(_select(spec, {"series": [], "modality": "CT"})) == sorted([phantom, small])
    with pytest.raises(AirflowException, match="found no series"):
        _select(spec, {"series": [], "modality": "MR"})


def test_failing_step_fails_the_task_with_the_step_message(
    openjip_home: Path, ingest: Callable[[list[Path]], list[str]], ct_phantom: list[Path]
) -> None:
    folder = openjip_home / "operators" / "always-fails"
    folder.mkdir(parents=True)
    (folder / "operator.yaml").write_text(FAILING)
    (folder / "main.py").write_text(
        "from openjip import sdk\nsdk.run(lambda: sdk.fail(sdk.params()['message']))\n"
    )
    [uid] = ingest(ct_phantom)
    step = {
        "name": "judge",
        "operator": "always-fails@1.0.0",
        "params": {"message": "{{ params.why }}"},
    }
    operator = AnalysisOperator(task_id="judge", workflow_id="wf", step=step, series_uid=uid)
    context = {"params": {"why": "no lungs in this series"}, "run_id": "manual__1"}
    with pytest.raises(AirflowException, match=rf"step judge failed on \['{uid}'\]: no lungs"):
        operator.execute(context)
