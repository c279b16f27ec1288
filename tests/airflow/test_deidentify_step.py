"""The ``deidentify`` operator as a workflow step, run with ``dag.test()`` in a real Airflow on a
CT phantom: the de-identified copy is stored and indexed as a new series under the site's
pseudonym with the run's report beside it, the originals stay; an instance with suspected
burned-in text fails the step."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pydicom
from airflow.dag_processing.dagbag import DagBag
from pydicom.data import get_testdata_file

from openjip.config import Settings
from openjip.deid.pseudonyms import Pseudonyms, site_secret
from openjip.index import Query, open_index
from openjip.storage import open_store

SECONDARY_CAPTURE = Path(get_testdata_file("SC_rgb.dcm"))
"""A secondary capture without BurnedInAnnotation NO: quarantined."""


def test_deidentify_series_stores_a_pseudonymised_copy(
    dagbag: DagBag,
    settings: Settings,
    ingest: Callable[[list[Path]], list[str]],
    ct_phantom: list[Path],
) -> None:
    [source_uid] = ingest(ct_phantom)
    original = pydicom.dcmread(ct_phantom[0])

    run = dagbag.dags["deidentify-series"].test(
        run_conf={"series": [source_uid], "options": "retain-longitudinal-modified-dates"}
    )

    assert run.state == "success"
    index, store = open_index(settings), open_store(settings)
    [copy] = [s for s in index.find_series(Query()) if s.SeriesInstanceUID != source_uid]
    pseudonyms = Pseudonyms(site_secret(settings.home_dir, settings.deid_secret_path))
    assert copy.SeriesInstanceUID == pseudonyms.uid(source_uid)
    assert copy.PatientID == pseudonyms.patient(str(original.PatientID))
    instances = index.find_instances(Query(SeriesInstanceUID=[copy.SeriesInstanceUID]))
    assert len(instances) == len(ct_phantom)
    for instance in instances:
        data = store.get(instance.object_key)
        assert str(original.PatientName).encode() not in data
        assert str(original.PatientID).encode() not in data
        dataset = pydicom.dcmread(io.BytesIO(data))
        assert dataset.PatientIdentityRemoved == "YES"
        assert dataset.LongitudinalTemporalInformationModified == "MODIFIED"
    # The originals are untouched, and the run's report is a run output of the step.
    assert len(index.find_instances(Query(SeriesInstanceUID=[source_uid]))) == len(ct_phantom)
    [report_key] = [i.key for i in store.list("runs/") if i.key.endswith("deid-report.json")]
    report = json.loads(store.get(report_key))
    assert report["instances"] == len(ct_phantom) and report["check"]["passed"]
    assert report["profile"]["options"] == ["retain-longitudinal-modified-dates"]
    index.close()


def test_a_quarantined_instance_fails_the_step(
    dagbag: DagBag, settings: Settings, ingest: Callable[[list[Path]], list[str]]
) -> None:
    [series_uid] = ingest([SECONDARY_CAPTURE])

    run = dagbag.dags["deidentify-series"].test(run_conf={"series": [series_uid]})

    assert run.state == "failed"
    index = open_index(settings)
    assert [s.SeriesInstanceUID for s in index.find_series(Query())] == [series_uid]
    index.close()
