"""Analysis pods fetch and publish through the web service under a step grant, holding no store or
index credential: the real fetch and publish phases (``python -m openjip.runner.step_io``, as the
pod runs them) against a real web service over a real store and index. A grant opens exactly its
step's inputs and output prefix: not another series or project, not DICOMweb, not after expiry,
not when forged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from pydicom.data import get_testdata_file

from openjip.access import UserStore
from openjip.config import Settings
from openjip.index import Query, open_index
from openjip.runner import StepRequest
from openjip.runner.grants import mint_grant
from openjip.runner.kubernetes import GRANT_ENV, WEB_URL_ENV, AnalysisPod
from openjip.storage import open_store
from openjip.web import WebService

SECRET = "a-step-grant-key-of-at-least-32-bytes-0123456789"


@pytest.fixture
def granting_settings(settings: Settings) -> Settings:
    settings.access.step_token_secret = type(settings.access.step_token_secret)(SECRET)
    settings.web.port = 0
    return settings


@pytest.fixture
def web(granting_settings: Settings) -> Iterator[WebService]:
    UserStore(granting_settings.access_dir).add("admin", "an admin password", "admin")
    service = WebService(granting_settings)
    service.start()
    yield service
    service.stop()


@pytest.fixture
def two_series(
    granting_settings: Settings, ingest: Callable[[list[Path]], list[str]], ct_phantom: list[Path]
) -> tuple[str, str]:
    """A phantom series in ``default`` and another study's series in project ``p2``."""
    [own] = ingest(ct_phantom)
    [other] = ingest([Path(get_testdata_file("CT_small.dcm"))])
    index = open_index(granting_settings)
    [series] = index.find_series(Query(SeriesInstanceUID=[other]))
    index.set_study_projects(series.StudyInstanceUID, ["p2"], replace=True)
    index.close()
    return own, other


def _request(series: str, **changes: object) -> StepRequest:
    fields: dict[str, object] = {
        "dag_id": "ct-body-mask",
        "run_id": "manual__2026-01-01T00:00:00+00:00",
        "step": "segment",
        "operator": "threshold-segmentation@0.1.0",
        "series_uids": [series],
    }
    fields.update(changes)
    return StepRequest(**fields)  # type: ignore[arg-type]


def _phase(phase: str, web: WebService, grant: str, work: Path) -> subprocess.CompletedProcess[str]:
    """One phase as the pod runs it: its own process, nothing but the URL and the grant."""
    env = {
        "PATH": os.environ["PATH"],
        WEB_URL_ENV: web.url,
        GRANT_ENV: grant,
        "OPENJIP_STEP_WORK_DIR": str(work),
        "OPENJIP_STEP_XCOM_FILE": str(work / "xcom.json"),
    }
    return subprocess.run(
        [sys.executable, "-m", "openjip.runner.step_io", phase],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_fetch_and_publish_through_the_web_service_with_the_grant_alone(
    granting_settings: Settings,
    web: WebService,
    two_series: tuple[str, str],
    ct_phantom: list[Path],
    tmp_path: Path,
) -> None:
    own, _ = two_series
    grant = mint_grant(SECRET, _request(own), 600)
    work = tmp_path / "pod"

    fetched = _phase("fetch", web, grant, work)
    assert fetched.returncode == 0, fetched.stderr
    inputs = sorted(path.name for path in (work / "input").iterdir())
    assert len(inputs) == len(ct_phantom)
    assert all(name.endswith(".dcm") for name in inputs)

    # What the operator would write: a non-DICOM result and a DICOM one.
    (work / "output" / "report").mkdir(parents=True)
    (work / "output" / "report" / "volume.json").write_text('{"ml": 42}')
    (work / "output" / "copy.dcm").write_bytes((work / "input" / inputs[0]).read_bytes())
    published = _phase("publish", web, grant, work)
    assert published.returncode == 0, published.stderr

    outcome = json.loads((work / "xcom.json").read_text())
    prefix = f"runs/ct-body-mask/manual__2026-01-01T00_00_00+00_00/segment/{own}/"
    assert outcome["output_keys"] == [prefix + "copy.dcm", prefix + "report/volume.json"]
    assert outcome["instances"] == 1
    store = open_store(granting_settings)
    assert store.get(prefix + "report/volume.json") == b'{"ml": 42}'
    index = open_index(granting_settings)
    [listed] = index.find_run_outputs(workflow="ct-body-mask")
    assert listed.object_key == prefix + "report/volume.json"
    index.close()
    audit = (granting_settings.access_audit_path).read_text()
    assert '"step:ct-body-mask/manual__2026-01-01T00:00:00+00:00/segment"' in audit


def test_a_grant_opens_its_own_series_only(
    web: WebService, two_series: tuple[str, str], granting_settings: Settings
) -> None:
    own, other = two_series
    grant = mint_grant(SECRET, _request(own), 600)
    index = open_index(granting_settings)
    [other_instance] = index.find_instances(Query(SeriesInstanceUID=[other]))
    index.close()
    bearer = {"Authorization": f"Bearer {grant}"}
    with httpx.Client(base_url=web.url, headers=bearer, timeout=10) as client:
        listed = client.get("/steps/inputs").json()["inputs"]
        assert listed and all(other not in item["path"] for item in listed)
        # Another project's instance, by its file name or by its object key: not an input.
        name = other_instance.object_key.rsplit("/", 1)[-1]
        for path in (name, other_instance.object_key, f"../{other}/{name}"):
            assert client.get(f"/steps/inputs/{path}").status_code == 404
        # The grant is no DICOMweb credential, not even for its own series.
        assert client.get("/dicom-web/studies").status_code == 401
        assert client.get(f"/dicom-web/series?SeriesInstanceUID={own}").status_code == 401
        # Outputs land under the step's own prefix whatever their path says.
        answer = client.put("/steps/outputs/%2E%2E/%2E%2E/other-step/x.json", content=b"{}")
        assert answer.status_code == 400, answer.text
        assert "not a plain relative path" in answer.json()["detail"]
    assert not any("other-step" in info.key for info in open_store(granting_settings).list("runs/"))


def test_a_result_cannot_pull_another_projects_study_into_the_steps_projects(
    web: WebService, two_series: tuple[str, str], granting_settings: Settings
) -> None:
    """A step of a ``default`` series publishes a DICOM "result" that is really an instance of
    the ``p2`` study: refused, so the study stays invisible to ``default``."""
    own, other = two_series
    grant = mint_grant(SECRET, _request(own), 600)
    index = open_index(granting_settings)
    [other_series] = index.find_series(Query(SeriesInstanceUID=[other]))
    index.close()
    forged = Path(str(get_testdata_file("CT_small.dcm"))).read_bytes()
    with httpx.Client(base_url=web.url, timeout=30) as client:
        answer = client.put(
            "/steps/outputs/seg.dcm",
            content=forged,
            headers={"Authorization": f"Bearer {grant}"},
        )
    assert answer.status_code == 400, answer.text
    assert "outside the projects of the step's inputs" in answer.json()["detail"]
    index = open_index(granting_settings)
    [study] = index.find_studies(Query(StudyInstanceUID=[other_series.StudyInstanceUID]))
    index.close()
    assert study.projects == ["p2"]


def test_a_forged_expired_or_missing_grant_is_refused(
    web: WebService, two_series: tuple[str, str], tmp_path: Path
) -> None:
    own, _ = two_series
    expired = mint_grant(SECRET, _request(own), -60)
    forged = mint_grant("another-key-of-at-least-32-bytes-abcdefghijkl", _request(own), 600)
    claims = jwt.decode(mint_grant(SECRET, _request(own), 600), options={"verify_signature": False})
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    with httpx.Client(base_url=web.url, timeout=10) as client:
        assert client.get("/steps/inputs").status_code == 401
        admin = client.get("/steps/inputs", auth=("admin", "an admin password"))
        assert admin.status_code == 401  # a user's password is no step grant
        for token in (expired, forged, unsigned, "not-a-token"):
            answer = client.get("/steps/inputs", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 401, token
    failed = _phase("fetch", web, forged, tmp_path / "pod")
    assert failed.returncode == 1
    assert "401" in failed.stderr and "step grant refused" in failed.stderr


def test_the_pod_carries_the_grant_and_no_credential(granting_settings: Settings) -> None:
    granting_settings.storage.s3_secret_key = type(granting_settings.storage.s3_secret_key)(
        "never-in-a-pod"
    )
    pod = AnalysisPod(granting_settings).manifest(_request("1.2.3.4"))
    text = json.dumps(pod)
    assert "never-in-a-pod" not in text and "secretKeyRef" not in text
    assert "OPENJIP_STORAGE__" not in text and "OPENJIP_INDEX__" not in text
    containers = {c["name"]: c for c in pod["spec"]["initContainers"] + pod["spec"]["containers"]}
    names = {name: {e["name"] for e in c.get("env", [])} for name, c in containers.items()}
    assert GRANT_ENV in names["fetch"] and GRANT_ENV in names["base"]
    assert GRANT_ENV not in names["step"]  # the operator's own code never sees it
