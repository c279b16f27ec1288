"""A site for the access tests: users of every role in project p1, one study in p1 and one in
p2 ingested through the real ingest path, and helpers to make DICOM instances and STOW bodies."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pydicom.data
from pydicom.uid import generate_uid

from openjip.access import UserStore
from openjip.config import Settings
from openjip.index import open_index
from openjip.ingest import Ingestor
from openjip.storage import open_store
from openjip.web.dicomweb.multipart import write_multipart

CT = Path(str(pydicom.data.get_testdata_file("CT_small.dcm")))
ROLES = ("admin", "researcher", "viewer", "uploader")
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class StoredStudy:
    study: str
    series: str
    instance: str


def instance_bytes(
    study: str | None = None,
    series: str | None = None,
    *,
    sop: str | None = None,
    patient_name: str = "DOE^JOHN",
) -> tuple[bytes, StoredStudy]:
    """A real CT instance (pydicom's CT_small) with fresh UIDs, in ``study``/``series``."""
    dataset = pydicom.dcmread(CT)
    dataset.StudyInstanceUID = study or generate_uid()
    dataset.SeriesInstanceUID = series or generate_uid()
    dataset.SOPInstanceUID = sop or generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.PatientName = patient_name
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    uids = StoredStudy(dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID)
    return buffer.getvalue(), uids


def stow_body(*instances: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        write_multipart([("application/dicom", [data]) for data in instances], boundary)
    )
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
    }
    return body, headers


def add_users(settings: Settings) -> None:
    """One user per role, named after it, in project p1."""
    users = UserStore(settings.access_dir)
    for role in ROLES:
        users.add(role, PASSWORD, role, ["p1"])


def store_study(settings: Settings, project: str) -> StoredStudy:
    """One instance in a new study of ``project``, through the ingest path."""
    data, uids = instance_bytes()
    index = open_index(settings)
    try:
        Ingestor(open_store(settings), index).ingest_bytes(
            data, source_ae="TEST", projects=[project]
        )
    finally:
        index.close()
    return uids


def client(base_url: str, role: str | None, password: str = PASSWORD) -> httpx.Client:
    """An HTTP client authenticating as the user named ``role`` (none when ``None``)."""
    auth = (role, password) if role else None
    return httpx.Client(base_url=base_url, auth=auth, timeout=30)
