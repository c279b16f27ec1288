"""Results of a workflow step belong to the projects of its inputs (local step runner)."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from openjip.config import Settings
from openjip.index import Query, open_index
from openjip.ingest import Ingestor
from openjip.runner import StepRequest
from openjip.runner.local import LocalStepRunner
from openjip.storage import open_store


def test_dicom_results_inherit_the_projects_of_their_input_series(
    settings: Settings, tmp_path: Path
) -> None:
    store, index = open_store(settings), open_index(settings)
    try:
        source = Path(str(get_testdata_file("CT_small.dcm")))
        inputs = Ingestor(store, index).ingest_file(source, source_ae="CT", projects=["lung"])
        result = pydicom.dcmread(source)  # a "result": a new series of the same study
        result.SeriesInstanceUID, result.SOPInstanceUID = generate_uid(), generate_uid()
        result.file_meta.MediaStorageSOPInstanceUID = result.SOPInstanceUID
        output = tmp_path / "output"
        output.mkdir()
        result.save_as(output / "result.dcm")
        request = StepRequest(
            dag_id="seg",
            run_id="manual__1",
            step="seg",
            operator="x@1",
            series_uids=[inputs.record.SeriesInstanceUID],
        )
        runner = LocalStepRunner(store, index, tmp_path / "work")
        outcome = runner.publish_outputs(request, output)
        (series,) = index.find_series(Query(SeriesInstanceUID=outcome.dicom_series))
        assert series.projects == ["lung"]
        assert series.derived_from == inputs.record.SeriesInstanceUID
        assert index.find_series(Query(projects=["default"])) == []
    finally:
        index.close()
