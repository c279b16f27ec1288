"""Issue 15 item 6: a DICOM result of an analysis step is stored once (at its output key under
``runs/``, not also under ``dicom/``), and ``index rebuild`` gives it back its source series
(``derived_from``): from the output key, or for a step over several series from the SEG's
ReferencedSeriesSequence or SourceImageSequence. Afterwards no result starts a workflow.

Real parts: the local step runner's publishing, a highdicom SEG of pydicom's CT, the SQLite
index, the completion sweep and the series-arrival rule of a workflow spec."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
import yaml
from pydicom.data import get_testdata_file
from pydicom.sr.codedict import codes

from openjip.airflow.series_arrival import triggered_runs
from openjip.index import Query
from openjip.index.sqlite import SQLiteIndex
from openjip.ingest import Ingestor, rebuild_index
from openjip.ingest.results import RESULT_SOURCE_AE
from openjip.receiver.sweeper import CompletionSweeper
from openjip.runner.base import StepRequest
from openjip.runner.local import LocalStepRunner
from openjip.storage.local import LocalObjectStore
from openjip.workflows.spec import WorkflowSpec

CT = Path(get_testdata_file("CT_small.dcm"))
MR = Path(get_testdata_file("MR_small.dcm"))
SPEC = Path(__file__).parents[2] / "dags" / "workflows" / "ct-body-mask.yaml"
RUN_ID = "manual__2026-01-01T00:00:00+00:00"

Site = tuple[LocalObjectStore, SQLiteIndex, Ingestor]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    store = LocalObjectStore(tmp_path / "objects")
    index = SQLiteIndex(tmp_path / "index.sqlite3")
    yield store, index, Ingestor(store, index)
    index.close()


def _seg_of(source: Path, *, keep_series_reference: bool = True) -> bytes:
    """A DICOM SEG of ``source`` as an operator writes it (highdicom)."""
    image = pydicom.dcmread(source)
    mask = np.zeros((1, image.Rows, image.Columns), dtype=np.uint8)
    mask[0, 10:40, 10:40] = 1
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Body",
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=codes.SCT.EntireBody,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="test", family=codes.cid7162.MorphologicalOperations, version="1"
        ),
    )
    seg = hd.seg.Segmentation(
        source_images=[image],
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=1001,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="openjip",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="none",
    )
    if not keep_series_reference:  # only the SourceImageSequence of the frames names the source
        del seg.ReferencedSeriesSequence
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return buffer.getvalue()


def _publish(
    runner: LocalStepRunner, request: StepRequest, outputs: dict[str, bytes], out: Path
) -> None:
    out.mkdir(parents=True)
    for name, data in outputs.items():
        (out / name).write_bytes(data)
    runner.publish_outputs(request, out)


def _instances(index: SQLiteIndex) -> dict[str, tuple[str, str, str]]:
    """SOPInstanceUID: (object key, derived_from, source AE) of every indexed instance."""
    return {
        record.SOPInstanceUID: (record.object_key, record.derived_from, record.source_ae)
        for record in index.find_instances(Query())
    }


def test_a_result_is_stored_once_and_rebuild_restores_its_source(
    site: Site, tmp_path: Path
) -> None:
    store, index, ingestor = site
    ct = ingestor.ingest_file(CT, source_ae="SCANNER").record
    mr = ingestor.ingest_file(MR, source_ae="SCANNER").record
    runner = LocalStepRunner(store, index, tmp_path / "work")
    per_series = StepRequest("seg", RUN_ID, "mask", "seg@1", [ct.SeriesInstanceUID])
    over_both = StepRequest(
        "seg", RUN_ID, "report", "rep@1", [ct.SeriesInstanceUID, mr.SeriesInstanceUID]
    )
    per_series_seg = _seg_of(CT)
    referencing_seg = _seg_of(CT)
    source_image_seg = _seg_of(CT, keep_series_reference=False)
    _publish(runner, per_series, {"mask.dcm": per_series_seg, "volume.json": b"{}"}, tmp_path / "a")
    _publish(
        runner, over_both, {"a.dcm": referencing_seg, "b.dcm": source_image_seg}, tmp_path / "b"
    )

    # Once: the results are where the step put them, nothing of them under dicom/.
    assert sorted(info.key for info in store.list("dicom/")) == sorted(
        [ct.object_key, mr.object_key]
    )
    published = _instances(index)
    seg_uids = [
        pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID
        for data in (per_series_seg, referencing_seg, source_image_seg)
    ]
    prefix = f"runs/seg/{RUN_ID.replace(':', '_')}"
    assert [published[uid][0] for uid in seg_uids] == [
        f"{prefix}/mask/{ct.SeriesInstanceUID}/mask.dcm",
        f"{prefix}/report/all/a.dcm",
        f"{prefix}/report/all/b.dcm",
    ]
    assert [published[uid][1:] for uid in seg_uids] == [
        (ct.SeriesInstanceUID, RESULT_SOURCE_AE)
    ] * 3
    assert store.get(published[seg_uids[0]][0]) == per_series_seg  # retrievable from its record

    report = rebuild_index(store, index)

    assert (report.indexed, report.results, report.run_outputs, report.skipped) == (2, 3, 1, [])
    rebuilt = _instances(index)
    assert {uid: value[:2] for uid, value in rebuilt.items()} == {
        uid: value[:2] for uid, value in published.items()
    }
    # The AE of received files comes from their file meta; results are the steps' own again.
    assert [rebuilt[uid][2] for uid in seg_uids] == [RESULT_SOURCE_AE] * 3
    sources = {s.SeriesInstanceUID: s.derived_from for s in index.find_series(Query())}
    assert sources[ct.SeriesInstanceUID] == sources[mr.SeriesInstanceUID] == ""
    assert sorted(value for value in sources.values() if value) == [ct.SeriesInstanceUID] * 3


def _match_everything() -> WorkflowSpec:
    """ct-body-mask with a series-arrival rule any series matches (a SEG included)."""
    spec: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    spec["triggers"]["on_series_complete"] = [{"match": {"Modality": ".*"}}]
    return WorkflowSpec.model_validate(spec)


def test_after_a_rebuild_no_result_starts_a_workflow(site: Site, tmp_path: Path) -> None:
    store, index, ingestor = site
    ct = ingestor.ingest_file(CT, source_ae="SCANNER").record
    runner = LocalStepRunner(store, index, tmp_path / "work")
    request = StepRequest("ct-body-mask", RUN_ID, "segment", "seg@1", [ct.SeriesInstanceUID])
    _publish(runner, request, {"seg.dcm": _seg_of(CT)}, tmp_path / "out")
    specs = [_match_everything()]
    started: list[tuple[str, dict[str, Any]]] = []

    def sweep() -> None:
        hook = lambda series: started.extend(triggered_runs(specs, series))  # noqa: E731
        CompletionSweeper(index, [hook], idle_seconds=0, interval=1, clock=lambda: 1e12).sweep()

    sweep()
    before = list(started)
    started.clear()
    rebuild_index(store, index)
    sweep()

    # The rebuilt index completes every series again; the source starts the same run as the
    # first time (one run id per series version, so the trigger queue drops it), the SEG none.
    assert started == before
    assert [conf["series"] for _, conf in started] == [[ct.SeriesInstanceUID]]
