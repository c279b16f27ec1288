"""STOW-RS into a project that stores de-identified data only: the instance is stored as its
de-identified copy under the site's pseudonyms, the received bytes never reach the store, and
an instance with suspected burned-in text fails with its reason."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pydicom
import pydicom.data
import pytest

from openjip.config import Settings
from openjip.config.deid import DeidPolicy
from openjip.deid.pseudonyms import Pseudonyms, site_secret
from openjip.index import Query, open_index
from openjip.web.dicomweb.multipart import write_multipart

CT = Path(str(pydicom.data.get_testdata_file("CT_small.dcm")))
SECONDARY_CAPTURE = Path(str(pydicom.data.get_testdata_file("SC_rgb.dcm")))


@pytest.fixture
def research_site(settings: Settings) -> Settings:
    """The site's ``default`` project de-identifies on ingest (set before the service starts)."""
    settings.deid.projects = {"default": DeidPolicy(on_ingest=True)}
    return settings


def test_stow_into_a_de_identifying_project_stores_the_copy_only(
    research_site: Settings, http: httpx.Client
) -> None:
    boundary = uuid.uuid4().hex
    parts = [("application/dicom", [path.read_bytes()]) for path in (CT, SECONDARY_CAPTURE)]
    response = http.post(
        "/dicom-web/studies?project=default",
        content=b"".join(write_multipart(parts, boundary)),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
    )

    assert response.status_code == 202, response.text
    body = response.json()
    [failure] = body["00081198"]["Value"]
    assert "secondary capture" in failure["00000902"]["Value"][0]
    original = pydicom.dcmread(CT)
    pseudonyms = Pseudonyms(site_secret(research_site.home_dir, research_site.deid_secret_path))
    [stored] = body["00081199"]["Value"]
    assert stored["00081155"]["Value"] == [pseudonyms.uid(original.SOPInstanceUID)]
    index = open_index(research_site)
    [record] = index.find_instances(Query())
    assert record.PatientID == pseudonyms.patient(str(original.PatientID))
    index.close()
    [path] = [p for p in research_site.storage_path.rglob("*.dcm")]
    data = path.read_bytes()
    assert str(original.PatientName).encode() not in data
    assert original.SOPInstanceUID.encode() not in data
