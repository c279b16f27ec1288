"""WADO-RS frames, bulk data, rendered and thumbnail resources against pydicom's own pixel data,
for every transfer syntax that pydicom's test files (and pydicom-data's) hold and pydicom can
decode here; dicomweb-client retrieving frames; Accept headers the server cannot satisfy."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pydicom.data
import pytest
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass
from PIL import Image
from pydicom.data.data_manager import external_data_sources
from pydicom.encaps import get_frame
from pydicom.pixels import apply_modality_lut, pixel_array
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import generate_uid

from openjip.web import WebService
from openjip.web.dicomweb.media import is_native
from openjip.web.dicomweb.multipart import MultipartReader, parse_media_type

UNCOMPRESSED = (
    'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'
)
OCTET = "application/octet-stream"
AS_STORED = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
TEST_FILE_DIRS = (
    Path(pydicom.data.__file__).parent / "test_files",
    *(Path(source.data_path) for source in external_data_sources().values()),
)
UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def _decodable(path: Path) -> pydicom.Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
            if "PixelData" not in ds:
                return None
            ds.pixel_array  # noqa: B018 - pydicom decodes it or raises
        except Exception:  # noqa: BLE001 - test data holds deliberately broken files
            return None
    return ds


def _cases() -> dict[str, Path]:
    """Per transfer syntax the smallest decodable single-frame, multi-frame and 1-bit file."""
    chosen: dict[str, Path] = {}
    for root in TEST_FILE_DIRS:
        for path in sorted(root.rglob("*.dcm")):
            ds = _decodable(path)
            if ds is None:
                continue
            syntax = str(ds.file_meta.TransferSyntaxUID)
            shape = "multi" if int(ds.get("NumberOfFrames") or 1) > 1 else "single"
            key = f"{syntax}-{'1bit' if ds.BitsAllocated == 1 else shape}"
            if key not in chosen or path.stat().st_size < chosen[key].stat().st_size:
                chosen[key] = path
    return chosen


CASES = _cases()


def test_every_decodable_transfer_syntax_of_the_test_data_is_covered() -> None:
    syntaxes = {key.rsplit("-", 1)[0] for key in CASES}
    # pydicom-data and pydicom's own files hold these; a missing one means a decoder is gone.
    assert {
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.5",
    } <= syntaxes


def _with_uids(path: Path, folder: Path) -> Path:
    """``path`` with any missing study/series/instance UID filled in (pixel data untouched)."""
    ds = pydicom.dcmread(path)
    if all(name in ds for name in UIDS):
        return path
    for name in UIDS:
        if name not in ds:
            setattr(ds, name, generate_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    target = folder / path.name
    ds.save_as(target, enforce_file_format=True)
    return target


@pytest.fixture
def stored(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    ingest: Callable[[list[Path]], list[str]],
) -> pydicom.Dataset:
    path = _with_uids(request.param, tmp_path)
    ingest([path])
    return pydicom.dcmread(path)


@pytest.fixture
def http(web_service: WebService, admin_auth: tuple[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{web_service.url}/dicom-web", timeout=30, auth=admin_auth
    ) as client:
        yield client


def _url(ds: pydicom.Dataset) -> str:
    series = f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    return f"{series}/instances/{ds.SOPInstanceUID}"


def _parts(response: httpx.Response) -> list[tuple[str, bytes]]:
    assert response.status_code == 200, response.text
    media_type, params = parse_media_type(response.headers["content-type"])
    assert media_type == "multipart/related"
    reader = MultipartReader(params["boundary"], 1 << 30)
    reader.feed(response.content)
    return [(part.headers["content-type"], bytes(part.data)) for part in reader.finish()]


def _expected_decoded(ds: pydicom.Dataset, index: int) -> bytes:
    array = pixel_array(ds, index=index)
    if ds.BitsAllocated == 1:
        return np.packbits(array.astype(np.uint8).ravel(), bitorder="little").tobytes()
    return array.astype(array.dtype.newbyteorder("<")).tobytes()


def _expected_stored(ds: pydicom.Dataset, index: int, frames: int) -> bytes:
    syntax = str(ds.file_meta.TransferSyntaxUID)
    if not is_native(syntax):
        return get_frame(ds.PixelData, index, number_of_frames=frames)
    if syntax == "1.2.840.10008.1.2.2" or ds.BitsAllocated % 8:
        return _expected_decoded(ds, index)  # served decoded: big endian and bits are unpacked
    length = int(get_expected_length(ds, unit="bytes")) // frames
    return bytes(ds.PixelData[index * length : (index + 1) * length])


@pytest.mark.parametrize("stored", list(CASES.values()), ids=list(CASES), indirect=True)
def test_frames_as_stored_and_decoded_match_pydicom(
    stored: pydicom.Dataset, http: httpx.Client
) -> None:
    frames = int(stored.get("NumberOfFrames") or 1)
    numbers = sorted({1, frames, (frames + 1) // 2})
    listed = ",".join(str(number) for number in numbers)
    decoded = _parts(http.get(f"{_url(stored)}/frames/{listed}", headers={"Accept": UNCOMPRESSED}))
    assert [data for _, data in decoded] == [_expected_decoded(stored, n - 1) for n in numbers]
    assert all("transfer-syntax=1.2.840.10008.1.2.1" in ctype for ctype, _ in decoded)
    as_stored = _parts(http.get(f"{_url(stored)}/frames/{listed}", headers={"Accept": AS_STORED}))
    expected = [_expected_stored(stored, n - 1, frames) for n in numbers]
    assert [data for _, data in as_stored] == expected


@pytest.mark.parametrize("stored", list(CASES.values()), ids=list(CASES), indirect=True)
def test_rendered_and_thumbnail_show_pydicom_pixels(
    stored: pydicom.Dataset, http: httpx.Client
) -> None:
    array = pixel_array(stored, index=0)
    colour = array.ndim == 3 and array.shape[-1] == 3
    params = {}
    if not colour:
        values = apply_modality_lut(array, stored).astype(np.float64)
        low, high = float(values.min()), float(values.max())
        params["window"] = f"{(low + high) / 2},{max(high - low, 1.0)}"
    response = http.get(f"{_url(stored)}/rendered", params=params, headers={"Accept": "image/png"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(response.content)))
    assert image.shape[:2] == (stored.Rows, stored.Columns)
    if colour and array.dtype == np.uint8:
        assert np.array_equal(image, array)
    elif not colour:
        width = max(high - low, 1.0)
        expected = np.clip((values - (low + high) / 2 + width / 2) * 255.0 / width, 0, 255)
        if stored.PhotometricInterpretation == "MONOCHROME1":
            expected = 255 - expected
        assert np.abs(image.astype(np.float64) - expected).max() <= 1.0
    thumbnail = http.get(f"{_url(stored)}/thumbnail", params={"viewport": "64,64"})
    assert thumbnail.headers["content-type"] == "image/jpeg"
    small = Image.open(io.BytesIO(thumbnail.content))
    assert max(small.size) == 64
    ratio = stored.Columns / stored.Rows
    assert abs(small.size[0] / small.size[1] - ratio) < 0.1 * max(ratio, 1 / ratio)


CT = Path(str(pydicom.data.get_testdata_file("CT_small.dcm")))
JPEG = Path(str(pydicom.data.get_testdata_file("SC_rgb_jpeg_gdcm.dcm")))


@pytest.fixture
def ct_and_jpeg(
    ingest: Callable[[list[Path]], list[str]],
) -> tuple[pydicom.Dataset, pydicom.Dataset]:
    ingest([CT, JPEG])
    return pydicom.dcmread(CT), pydicom.dcmread(JPEG)


def test_dicomweb_client_retrieves_frames_and_bulk_data(
    ct_and_jpeg: tuple[pydicom.Dataset, pydicom.Dataset],
    web_service: WebService,
    admin_auth: tuple[str, str],
) -> None:
    ct, jpeg = ct_and_jpeg
    session = create_session_from_user_pass(*admin_auth)
    client = DICOMwebClient(url=f"{web_service.url}/dicom-web", session=session)
    uids = {
        "study_instance_uid": ct.StudyInstanceUID,
        "series_instance_uid": ct.SeriesInstanceUID,
        "sop_instance_uid": ct.SOPInstanceUID,
    }
    (frame,) = client.retrieve_instance_frames(
        **uids,
        frame_numbers=[1],
        media_types=(("application/octet-stream", "1.2.840.10008.1.2.1"),),
    )
    assert frame == ct.pixel_array.astype("<i2").tobytes()
    (compressed,) = client.retrieve_instance_frames(
        study_instance_uid=jpeg.StudyInstanceUID,
        series_instance_uid=jpeg.SeriesInstanceUID,
        sop_instance_uid=jpeg.SOPInstanceUID,
        frame_numbers=[1],
        media_types=(("image/jpeg", "1.2.840.10008.1.2.4.70"),),
    )
    assert compressed == get_frame(jpeg.PixelData, 0, number_of_frames=1)
    metadata = client.retrieve_instance_metadata(**uids)
    bulk = metadata["7FE00010"]["BulkDataURI"]
    path = f"/dicom-web{_url(ct)}/bulkdata/7FE00010"
    # dicomweb-client sends Host without the port, so the server names port 80 in the URI.
    assert bulk.endswith(path)
    bulk_frames = client.retrieve_bulkdata(web_service.url + path, media_types=(OCTET,))
    assert bulk_frames == [frame]


@pytest.mark.parametrize(
    ("which", "path", "accept", "status", "reason"),
    [
        (0, "/frames/1", 'multipart/related; type="image/jpeg"', 406, "can be sent as"),
        (1, "/frames/1", 'multipart/related; type="image/jp2"', 406, "can be sent as"),
        (0, "/frames/1", "application/dicom+json", 406, "can be sent as"),
        (0, "/rendered", "application/pdf", 406, "image/jpeg or image/png"),
        (0, "/frames/2", UNCOMPRESSED, 404, "frames 1-1"),
        (0, "/frames/0", UNCOMPRESSED, 400, "numbers >= 1"),
        (0, "/frames/1,x", UNCOMPRESSED, 400, "numbers >= 1"),
        (0, "/rendered?viewport=a", "image/png", 400, "viewport"),
        (0, "/frames/1,2/rendered", "image/png", 400, "one frame at a time"),
        (0, "/bulkdata/00100010", "*/*", 404, "PixelData"),
    ],
)
def test_requests_the_server_cannot_satisfy_say_why(
    ct_and_jpeg: tuple[pydicom.Dataset, pydicom.Dataset],
    http: httpx.Client,
    which: int,
    path: str,
    accept: str,
    status: int,
    reason: str,
) -> None:
    response = http.get(_url(ct_and_jpeg[which]) + path, headers={"Accept": accept})
    assert response.status_code == status
    assert reason in response.json()["detail"]


def test_series_and_study_thumbnails(
    ingest: Callable[[list[Path]], list[str]], ct_phantom: list[Path], http: httpx.Client
) -> None:
    ingest(ct_phantom)
    ds = pydicom.dcmread(ct_phantom[0])
    series = http.get(f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/thumbnail")
    study = http.get(f"/studies/{ds.StudyInstanceUID}/thumbnail", headers={"Accept": "image/*"})
    for response in (series, study):
        assert response.status_code == 200
        assert Image.open(io.BytesIO(response.content)).size == (128, 128)
    assert series.content == study.content
    assert http.get("/studies/1.2.3/thumbnail").status_code == 404
