"""The local StepRunner with real store, index and operator subprocesses: inputs from the index,
outputs under runs/, chaining steps, and a failing operator's message reaching the caller."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from openjip.config import Settings
from openjip.index import Query, open_index
from openjip.runner import StepFailed, StepRequest, open_runner
from openjip.runner.local import LocalStepRunner
from openjip.storage import open_store

COUNTER = """\
name: file-counter
version: 1.0.0
description: Writes how many input files it saw; fails on request.
image: example.org/file-counter:1.0.0
command: [python, main.py]
input: {kind: dicom-series}
output: {kind: json}
params:
  fail_with: {type: string, default: ""}
"""

COUNTER_MAIN = """\
import json
from openjip import sdk

def main():
    message = sdk.params()["fail_with"]
    if message:
        sdk.fail(message)
    for item in sdk.inputs():
        count = len(item.files())
        (item.output_dir() / "count.json").write_text(json.dumps({"files": count}))

sdk.run(main)
"""


@pytest.fixture
def counter(openjip_home: Path) -> str:
    folder = openjip_home / "operators" / "file-counter"
    folder.mkdir(parents=True)
    (folder / "operator.yaml").write_text(COUNTER)
    (folder / "main.py").write_text(textwrap.dedent(COUNTER_MAIN))
    return "file-counter@1.0.0"


def _request(operator: str, series: list[str], **changes: object) -> StepRequest:
    fields: dict[str, object] = {
        "dag_id": "count",
        "run_id": "manual__2026-01-01T00:00:00+00:00",
        "step": "count",
        "operator": operator,
        "series_uids": series,
    }
    fields.update(changes)
    return StepRequest(**fields)  # type: ignore[arg-type]


def test_outputs_land_under_runs_and_chain_into_the_next_step(
    settings: Settings,
    ingest: Callable[[list[Path]], list[str]],
    ct_phantom: list[Path],
    counter: str,
) -> None:
    [uid] = ingest(ct_phantom)
    runner = open_runner(settings)
    assert isinstance(runner, LocalStepRunner)

    first = runner.run(_request(counter, [uid]))

    prefix = f"runs/count/manual__2026-01-01T00_00_00+00_00/count/{uid}/"
    assert first.output_keys == [prefix + "count.json"]
    assert first.dicom_series == []
    store = open_store(settings)
    assert store.get(prefix + "count.json") == b'{"files": 24}'

    index = open_index(settings)
    [listed] = index.find_run_outputs(workflow="count", series_instance_uid=uid)
    assert (listed.object_key, listed.step, listed.size) == (prefix + "count.json", "count", 13)
    assert listed.run_id == "manual__2026-01-01T00_00_00+00_00"  # as the object keys hold it

    second = runner.run(_request(counter, [uid], step="again", input_from="count"))
    assert store.get(second.output_keys[0]) == b'{"files": 1}'
    assert [o.step for o in index.find_run_outputs(run_id=listed.run_id)] == ["again", "count"]
    index.close()
    # Nothing of the step's work dir is left behind.
    assert list((settings.home_dir / "work").iterdir()) == []


def test_step_over_several_series_gets_one_folder_each(
    settings: Settings,
    ingest: Callable[[list[Path]], list[str]],
    ct_phantom: list[Path],
    counter: str,
) -> None:
    from pydicom.data import get_testdata_file

    series = ingest(ct_phantom) + ingest([Path(get_testdata_file("CT_small.dcm"))])
    outcome = open_runner(settings).run(_request(counter, series))
    names = sorted(key.split("/")[-2] for key in outcome.output_keys)
    assert all("/count/all/" in key for key in outcome.output_keys)
    assert names == sorted(series)


def test_failing_operator_fails_the_step_with_its_message(
    settings: Settings,
    ingest: Callable[[list[Path]], list[str]],
    ct_phantom: list[Path],
    counter: str,
) -> None:
    [uid] = ingest(ct_phantom)
    with pytest.raises(StepFailed, match="no lungs in this series"):
        open_runner(settings).run(
            _request(counter, [uid], params={"fail_with": "no lungs in this series"})
        )
    assert list(open_store(settings).list("runs/")) == []


def test_series_missing_from_the_index_is_a_clear_failure(settings: Settings, counter: str) -> None:
    with pytest.raises(StepFailed, match=r"series 1\.2\.3 is not in the index"):
        open_runner(settings).run(_request(counter, ["1.2.3"]))
    index = open_index(settings)
    assert index.find_series(Query()) == []
    index.close()
