"""Cohorts in a real object store and what people type into the series field, resolved to
series on a real index; a workflow of `input: {kind: cohort}` selects its cohort's series."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from openjip.airflow.operators import SelectSeriesOperator
from openjip.cohorts.selection import (
    Cohort,
    Selection,
    SelectionError,
    load_cohort,
    resolve_identifiers,
    save_cohort,
)
from openjip.config import Settings
from openjip.index import open_index
from openjip.phantom import write_ct_series
from openjip.storage import open_store
from openjip.workflows.spec import InputSpec


@pytest.fixture
def stored_ct(tmp_path: Path, ingest: Callable[[list[Path]], list[str]]) -> pydicom.Dataset:
    files = write_ct_series(tmp_path / "ct", slices=2, rows=16, columns=16, patient_id="P-7")
    ingest(files)
    return pydicom.dcmread(files[0], stop_before_pixels=True)


def test_typed_identifiers_resolve_to_series(
    stored_ct: pydicom.Dataset, settings: Settings
) -> None:
    index = open_index(settings)
    try:
        series = str(stored_ct.SeriesInstanceUID)
        for value in (series, str(stored_ct.StudyInstanceUID), stored_ct.AccessionNumber, "P-7"):
            found, notes = resolve_identifiers(index, [value])
            assert found == [series], value
            assert notes[0].startswith(value)
        assert resolve_identifiers(index, ["1.2.3"])[0] == ["1.2.3"]  # not indexed yet
        with pytest.raises(SelectionError, match="nobody, ACC-0"):
            resolve_identifiers(index, ["P-7", "nobody", "ACC-0"])
    finally:
        index.close()


def test_cohort_round_trip_and_a_cohort_workflow(
    stored_ct: pydicom.Dataset, settings: Settings, openjip_home: Path
) -> None:
    store = open_store(settings)
    save_cohort(store, Cohort("trial A", Selection(patients=["P-7"]), created_by="alice"))
    loaded = load_cohort(store, "trial A")
    assert loaded.selection.patients == ["P-7"] and loaded.created_by == "alice"
    operator = SelectSeriesOperator(
        task_id="select_series",
        input_spec=InputSpec(kind="cohort", cohort="trial A").model_dump(mode="json"),
    )
    assert operator.execute({"params": {"series": []}}) == [str(stored_ct.SeriesInstanceUID)]
    typed = operator.execute({"params": {"series": ["P-7"]}})
    assert typed == [str(stored_ct.SeriesInstanceUID)]
