"""QIDO-RS: search for studies, series and instances (PS3.18 10.6) on the metadata index."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from openjip.dicom.query_keys import INSTANCE_KEYWORDS, SERIES_KEYWORDS, STUDY_KEYWORDS
from openjip.index import InstanceRecord, MetadataIndex
from openjip.web.dicomweb.attributes import build_query, to_dicom_json, with_retrieve_url
from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.dicomweb.urls import dicomweb_base, require_uid

router = APIRouter()
DICOM_JSON = "application/dicom+json"


def _index(request: Request) -> MetadataIndex:
    return request.app.state.backends.index


def _accepts_json(request: Request) -> None:
    accept = request.headers.get("accept", "*/*")
    if not any(media in accept for media in ("json", "*/*", "application/*")):
        raise DicomWebError(406, f"search results are {DICOM_JSON}; Accept {accept!r} excludes it")


def _answer(datasets: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(datasets, media_type=DICOM_JSON)


def _instance_json(record: InstanceRecord, include: list[str], base: str) -> dict[str, Any]:
    dataset = to_dicom_json(record, INSTANCE_KEYWORDS)
    if include:
        everything = "ALL" in include
        for tag, item in record.header.items():
            if everything or tag in include:
                dataset.setdefault(tag, item)
    return with_retrieve_url(
        dataset,
        f"{base}/studies/{record.StudyInstanceUID}/series/{record.SeriesInstanceUID}"
        f"/instances/{record.SOPInstanceUID}",
    )


def _include_tags(include: list[str]) -> list[str]:
    from pydicom.datadict import tag_for_keyword

    tags = []
    for item in include:
        tag = tag_for_keyword(item)
        tags.append(f"{tag:08X}" if tag is not None else item.upper())
    return tags


@router.get("/studies", summary="QIDO-RS: search for studies")
def search_studies(request: Request) -> JSONResponse:
    """Studies matching the query parameters, as DICOM JSON."""
    _accepts_json(request)
    query, _ = build_query(request.query_params, {})
    base = dicomweb_base(request)
    return _answer(
        [
            with_retrieve_url(
                to_dicom_json(study, STUDY_KEYWORDS), f"{base}/studies/{study.StudyInstanceUID}"
            )
            for study in _index(request).find_studies(query)
        ]
    )


def _series(request: Request, fixed: dict[str, str]) -> JSONResponse:
    _accepts_json(request)
    query, _ = build_query(request.query_params, fixed)
    base = dicomweb_base(request)
    return _answer(
        [
            with_retrieve_url(
                to_dicom_json(series, SERIES_KEYWORDS),
                f"{base}/studies/{series.StudyInstanceUID}/series/{series.SeriesInstanceUID}",
            )
            for series in _index(request).find_series(query)
        ]
    )


@router.get("/series", summary="QIDO-RS: search for series")
def search_series(request: Request) -> JSONResponse:
    """Series of any study matching the query parameters."""
    return _series(request, {})


@router.get("/studies/{study}/series", summary="QIDO-RS: search for series of a study")
def search_study_series(study: str, request: Request) -> JSONResponse:
    """Series of one study matching the query parameters."""
    return _series(request, {"StudyInstanceUID": require_uid(study)})


def _instances(request: Request, fixed: dict[str, str]) -> JSONResponse:
    _accepts_json(request)
    query, include = build_query(request.query_params, fixed)
    tags = _include_tags(include)
    base = dicomweb_base(request)
    records = _index(request).find_instances(query, with_header=bool(tags))
    return _answer([_instance_json(record, tags, base) for record in records])


@router.get("/instances", summary="QIDO-RS: search for instances")
def search_instances(request: Request) -> JSONResponse:
    """Instances of any study matching the query parameters."""
    return _instances(request, {})


@router.get("/studies/{study}/instances", summary="QIDO-RS: search for instances of a study")
def search_study_instances(study: str, request: Request) -> JSONResponse:
    """Instances of one study matching the query parameters."""
    return _instances(request, {"StudyInstanceUID": require_uid(study)})


@router.get(
    "/studies/{study}/series/{series}/instances",
    summary="QIDO-RS: search for instances of a series",
)
def search_series_instances(study: str, series: str, request: Request) -> JSONResponse:
    """Instances of one series matching the query parameters."""
    return _instances(
        request,
        {"StudyInstanceUID": require_uid(study), "SeriesInstanceUID": require_uid(series)},
    )
