"""``openjip index rebuild`` gives every study its projects back: studies that arrived in a
project (as a known AE's are), studies added to or moved between projects by the admin route and
by ``openjip project``, and a step's DICOM result (in the projects of its input). Real local store
and SQLite index, the real web service and the real CLI; the index is deleted before the rebuild."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from pydicom.data import get_testdata_file

from openjip.access import UserStore
from openjip.access.projects import MARKERS_PREFIX
from openjip.config import Settings
from openjip.index import Query, open_index
from openjip.ingest import Ingestor
from openjip.storage import open_store
from openjip.web import WebService

OPENJIP = str(Path(sys.executable).with_name("openjip"))


def _openjip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPENJIP, *args], capture_output=True, text=True, timeout=300)


def _projects(settings: Settings) -> dict[str, list[str]]:
    index = open_index(settings)
    try:
        return {
            study.StudyInstanceUID: sorted(study.projects) for study in index.find_studies(Query())
        }
    finally:
        index.close()


def test_rebuild_keeps_the_projects_of_every_study(
    settings: Settings, ct_phantom: list[Path]
) -> None:
    store = open_store(settings)
    index = open_index(settings)
    try:
        ingestor = Ingestor(store, index)
        arrived = ingestor.ingest_file(ct_phantom[0], source_ae="P1_AE", projects=["p1"]).record
        for path in ct_phantom[1:]:
            ingestor.ingest_file(path, source_ae="P1_AE", projects=["p1"])
        moved = ingestor.ingest_file(
            Path(str(get_testdata_file("CT_small.dcm"))), source_ae="ANY"
        ).record
        added = ingestor.ingest_file(
            Path(str(get_testdata_file("MR_small.dcm"))), source_ae="ANY"
        ).record
    finally:
        index.close()
    assert _openjip("project", "move-study", "heart", moved.StudyInstanceUID).returncode == 0

    UserStore(settings.access_dir).add("admin", "the admin's password", "admin")
    settings.web.port = 0
    web = WebService(settings.model_copy(deep=True))
    web.start()
    try:
        answer = httpx.post(
            f"{web.url}/admin/studies/{added.StudyInstanceUID}/projects",
            json={"projects": ["p2"]},
            auth=("admin", "the admin's password"),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    finally:
        web.stop()
    before = _projects(settings)
    assert before == {
        arrived.StudyInstanceUID: ["p1"],
        moved.StudyInstanceUID: ["heart"],
        added.StudyInstanceUID: ["default", "p2"],
    }
    # One marker per study and project, nothing else, written once for the 24 phantom slices.
    markers = sorted(info.key for info in store.list(MARKERS_PREFIX))
    assert markers == sorted(
        f"{MARKERS_PREFIX}{study}/{project}"
        for study, projects in before.items()
        for project in projects
    )

    for path in settings.home_dir.glob("index*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    rebuilt = _openjip("index", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "3 studies given their projects back" in rebuilt.stdout
    assert _projects(settings) == before


def test_a_study_without_markers_stays_in_default(settings: Settings) -> None:
    """Data stored before markers existed: rebuild puts it into ``default``, as before."""
    store = open_store(settings)
    index = open_index(settings)
    try:
        record = (
            Ingestor(store, index)
            .ingest_file(
                Path(str(get_testdata_file("CT_small.dcm"))), source_ae="ANY", projects=["p1"]
            )
            .record
        )
    finally:
        index.close()
    for info in list(store.list(MARKERS_PREFIX)):
        store.delete(info.key)
    assert _openjip("index", "rebuild").returncode == 0
    assert _projects(settings) == {record.StudyInstanceUID: ["default"]}
