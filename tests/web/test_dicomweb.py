"""DICOMweb against a running web service: dicomweb-client as the client (STOW, QIDO, WADO),
raw HTTP for byte-level checks and bad input. Stored data are real files of pydicom's test set
and a synthetic CT series."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pydicom.data
import pytest
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass

from openjip.config import Settings
from openjip.index import Query, open_index
from openjip.storage import open_store
from openjip.web import WebService
from openjip.web.dicomweb.multipart import MultipartReader, parse_media_type, write_multipart

CT = Path(str(pydicom.data.get_testdata_file("CT_small.dcm")))
MR = Path(str(pydicom.data.get_testdata_file("MR_small.dcm")))
DICOM_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@pytest.fixture
def client(web_service: WebService, admin_auth: tuple[str, str]) -> DICOMwebClient:
    session = create_session_from_user_pass(*admin_auth)
    return DICOMwebClient(url=f"{web_service.url}/dicom-web", session=session)


def stow(
    http: httpx.Client, parts: list[tuple[str, bytes]], path: str = "/studies"
) -> httpx.Response:
    boundary = uuid.uuid4().hex
    body = b"".join(write_multipart([(ctype, [data]) for ctype, data in parts], boundary))
    return http.post(
        f"/dicom-web{path}",
        content=body,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
    )


def parts_of(response: httpx.Response) -> list[bytes]:
    _, params = parse_media_type(response.headers["content-type"])
    reader = MultipartReader(params["boundary"], 1 << 30)
    reader.feed(response.content)
    return [bytes(part.data) for part in reader.finish()]


def stored_objects(settings: Settings) -> list[str]:
    return [info.key for info in open_store(settings).list("dicom/")]


def test_stow_qido_wado_round_trip_with_dicomweb_client(
    client: DICOMwebClient, http: httpx.Client
) -> None:
    datasets = [pydicom.dcmread(CT), pydicom.dcmread(MR)]
    response = client.store_instances(datasets)
    assert len(response.ReferencedSOPSequence) == 2

    studies = client.search_for_studies()
    assert {study["0020000D"]["Value"][0] for study in studies} == {
        ds.StudyInstanceUID for ds in datasets
    }
    ct = datasets[0]
    (series,) = client.search_for_series(ct.StudyInstanceUID)
    assert series["00080060"]["Value"] == ["CT"]
    assert series["00201209"]["Value"] == [1]
    (instance,) = client.search_for_instances(ct.StudyInstanceUID, ct.SeriesInstanceUID)
    assert instance["00080018"]["Value"] == [ct.SOPInstanceUID]

    retrieved = client.retrieve_instance(
        ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID
    )
    assert retrieved.SOPInstanceUID == ct.SOPInstanceUID
    assert retrieved.PixelData == ct.PixelData
    metadata = client.retrieve_instance_metadata(
        ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID
    )
    assert metadata["00100010"]["Value"][0]["Alphabetic"] == str(ct.PatientName)
    assert metadata["7FE00010"]["BulkDataURI"].endswith("/bulkdata/7FE00010")


def test_wado_returns_the_stored_bytes(http: httpx.Client) -> None:
    original = CT.read_bytes()
    assert stow(http, [("application/dicom", original)]).status_code == 200
    ds = pydicom.dcmread(io.BytesIO(original))
    url = f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    response = http.get(url, headers={"Accept": DICOM_ACCEPT})
    assert response.status_code == 200
    assert parts_of(response) == [original]
    study = http.get(f"/dicom-web/studies/{ds.StudyInstanceUID}", headers={"Accept": "*/*"})
    assert parts_of(study) == [original]


def test_wado_negotiation_and_missing_data(http: httpx.Client) -> None:
    stow(http, [("application/dicom", CT.read_bytes())])
    ds = pydicom.dcmread(CT)
    url = f"/dicom-web/studies/{ds.StudyInstanceUID}"
    assert http.get(url, headers={"Accept": "image/jpeg"}).status_code == 406
    transcoding = (
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    )
    refused = http.get(url, headers={"Accept": transcoding})
    assert refused.status_code == 406 and "stored" in refused.json()["detail"]
    stored_ts = ds.file_meta.TransferSyntaxUID
    same = f'multipart/related; type="application/dicom"; transfer-syntax={stored_ts}'
    assert http.get(url, headers={"Accept": same}).status_code == 200
    assert http.get("/dicom-web/studies/1.2.3.4").status_code == 404
    assert http.get("/dicom-web/studies/not-a-uid").status_code == 400


@pytest.fixture
def phantom_site(http: httpx.Client, ct_phantom: list[Path]) -> Iterator[httpx.Client]:
    parts = [("application/dicom", path.read_bytes()) for path in ct_phantom[:6]]
    assert stow(http, parts).status_code == 200
    stow(http, [("application/dicom", CT.read_bytes()), ("application/dicom", MR.read_bytes())])
    yield http


def test_qido_matching_paging_and_includefield(phantom_site: httpx.Client) -> None:
    http = phantom_site
    all_studies = http.get("/dicom-web/studies").json()
    assert len(all_studies) == 3
    ct_studies = http.get("/dicom-web/studies", params={"ModalitiesInStudy": "CT"}).json()
    assert len(ct_studies) == 2
    by_tag = http.get("/dicom-web/studies", params={"00080061": "MR"}).json()
    assert len(by_tag) == 1
    phantom_patient = pydicom.dcmread(CT).PatientID
    wildcard = http.get("/dicom-web/studies", params={"PatientID": phantom_patient[:2] + "*"})
    assert any(s["00100020"]["Value"] == [phantom_patient] for s in wildcard.json())
    instances = http.get("/dicom-web/instances", params={"Modality": "CT"}).json()
    assert len(instances) == 7
    page = http.get("/dicom-web/instances", params={"Modality": "CT", "limit": 3, "offset": 5})
    assert len(page.json()) == 2
    with_header = http.get(
        "/dicom-web/instances",
        params={"SOPInstanceUID": pydicom.dcmread(CT).SOPInstanceUID, "includefield": "all"},
    ).json()
    assert with_header[0]["00280010"]["Value"] == [128]  # Rows, from the stored header
    assert with_header[0]["00081190"]["Value"][0].endswith(pydicom.dcmread(CT).SOPInstanceUID)
    surname = str(pydicom.dcmread(CT).PatientName).split("^")[0]
    fuzzy = {"PatientName": surname[1:].lower(), "fuzzymatching": "true"}
    # CT_small and MR_small share the surname; the phantom's patient does not.
    assert len(http.get("/dicom-web/studies", params=fuzzy).json()) == 2
    assert http.get("/dicom-web/studies", params={**fuzzy, "fuzzymatching": "false"}).json() == []
    study = http.get("/dicom-web/studies", params={"ModalitiesInStudy": "MR"}).json()[0]
    assert study["00080061"]["Value"] == ["MR"]
    assert study["00201206"]["Value"] == [1] and study["00201208"]["Value"] == [1]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"PatientWeight": "70"}, "cannot match on"),
        ({"limit": "-1"}, "whole number"),
        ({"StudyDate": "2024"}, "StudyDate"),
    ],
)
def test_qido_bad_queries_get_400(http: httpx.Client, params: dict[str, str], message: str) -> None:
    response = http.get("/dicom-web/studies", params=params)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def _dataset_without_sop_instance_uid() -> bytes:
    ds = pydicom.dcmread(CT)
    del ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def test_stow_bad_parts_are_reported_and_leave_nothing(
    http: httpx.Client, settings: Settings
) -> None:
    response = stow(
        http,
        [
            ("application/dicom", b"this is not DICOM at all" * 20),
            ("application/dicom", _dataset_without_sop_instance_uid()),
            ("text/plain", CT.read_bytes()),
        ],
    )
    assert response.status_code == 409
    failures = response.json()["00081198"]["Value"]
    assert [item["00081197"]["Value"] for item in failures] == [[0xC000]] * 3
    assert all(item["00000902"]["Value"][0] for item in failures)
    assert stored_objects(settings) == []
    index = open_index(settings)
    assert index.find_instances(Query()) == []
    index.close()


def test_stow_partial_success_and_study_mismatch(http: httpx.Client, settings: Settings) -> None:
    ct = pydicom.dcmread(CT)
    mixed = stow(
        http,
        [("application/dicom", CT.read_bytes()), ("application/dicom", MR.read_bytes())],
        path=f"/studies/{ct.StudyInstanceUID}",
    )
    assert mixed.status_code == 202
    body = mixed.json()
    assert len(body["00081199"]["Value"]) == 1
    (failure,) = body["00081198"]["Value"]
    assert failure["00081197"]["Value"] == [0xA900]
    assert failure["00081155"]["Value"] == [pydicom.dcmread(MR).SOPInstanceUID]
    assert len(stored_objects(settings)) == 1


def test_stow_request_errors(http: httpx.Client, web_service: WebService) -> None:
    not_multipart = http.post(
        "/dicom-web/studies", content=CT.read_bytes(), headers={"Content-Type": "application/dicom"}
    )
    assert not_multipart.status_code == 415
    xml_parts = http.post(
        "/dicom-web/studies",
        content=b"--b\r\n\r\n<x/>\r\n--b--\r\n",
        headers={"Content-Type": 'multipart/related; type="application/dicom+xml"; boundary=b'},
    )
    assert xml_parts.status_code == 415
    empty = http.post(
        "/dicom-web/studies",
        content=b"--b--\r\n",
        headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
    )
    assert empty.status_code == 400
    web_service.settings.web.max_upload_bytes = 1000
    too_big = stow(http, [("application/dicom", CT.read_bytes())])
    assert too_big.status_code == 413


def test_cors_for_a_viewer_on_another_origin(settings: Settings) -> None:
    settings.web.port = 0
    settings.web.cors_origins = ["https://viewer.example"]
    service = WebService(settings)
    service.start()
    try:
        preflight = httpx.options(
            f"{service.url}/dicom-web/studies",
            headers={
                "Origin": "https://viewer.example",
                "Access-Control-Request-Method": "GET",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "https://viewer.example"
        other = httpx.get(
            f"{service.url}/dicom-web/studies", headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
    finally:
        service.stop()


@pytest.mark.parametrize(
    ("name", "pixel_vr"),
    [
        ("CT_small.dcm", "OW"),  # native, 16 bits allocated
        ("OBXXXX1A.dcm", "OB"),  # native, 8 bits
        ("JPEG2000.dcm", "OB"),  # encapsulated
        ("test-SR.dcm", None),  # no image: no pixel data element
    ],
)
def test_metadata_is_the_stored_header_with_a_bulk_data_uri_for_images(
    http: httpx.Client, settings: Settings, name: str, pixel_vr: str | None
) -> None:
    data = Path(str(pydicom.data.get_testdata_file(name))).read_bytes()
    assert stow(http, [("application/dicom", data)]).status_code == 200
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    index = open_index(settings)
    (record,) = index.find_instances(Query(SOPInstanceUID=[ds.SOPInstanceUID]), with_header=True)
    index.close()
    base = f"{str(http.base_url).rstrip('/')}/dicom-web/studies/{ds.StudyInstanceUID}"
    instance = f"series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    expected = dict(record.header)
    if pixel_vr:
        uri = f"{base}/{instance}/bulkdata/7FE00010"
        expected["7FE00010"] = {"vr": pixel_vr, "BulkDataURI": uri}
    for url in (f"{base}/metadata", f"{base}/series/{ds.SeriesInstanceUID}/metadata",
                f"{base}/{instance}/metadata"):  # fmt: skip
        answer = http.get(url)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/dicom+json"
        assert answer.json() == [expected]
