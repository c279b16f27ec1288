"""QIDO-RS: search for studies, series and instances (PS3.18 10.6) on the metadata index,
answering from the caller's projects only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from openjip.access import ALLOWED, Action, Principal
from openjip.dicom.query_keys import INSTANCE_KEYWORDS, SERIES_KEYWORDS, STUDY_KEYWORDS
from openjip.index import InstanceRecord, MetadataIndex, Query
from openjip.web.access import require, web_access
from openjip.web.dicomweb.attributes import build_query, to_dicom_json, with_retrieve_url
from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.dicomweb.urls import dicomweb_base, require_uid

router = APIRouter()
DICOM_JSON = "application/dicom+json"
Searcher = Annotated[Principal, Depends(require(Action.FIND))]
STUDY_ORDER = "-StudyDate"
"""Studies newest first unless ``orderby`` says otherwise: OHIF sorts a list of up to 100
studies that way itself and, above 100, shows them in the archive's order with sorting off."""


def _index(request: Request) -> MetadataIndex:
    return request.app.state.backends.index


def _accepts_json(request: Request) -> None:
    accept = request.headers.get("accept", "*/*")
    if not any(media in accept for media in ("json", "*/*", "application/*")):
        raise DicomWebError(406, f"search results are {DICOM_JSON}; Accept {accept!r} excludes it")


def _scoped_query(
    request: Request, caller: Principal, fixed: dict[str, str], *, studies: bool = False
) -> tuple[Query | None, list[str]]:
    """The request's query limited to the caller's projects; ``None`` when it sees none.
    Only a search for ``studies`` is ordered (by ``orderby``)."""
    query, include = build_query(request.query_params, fixed)
    if studies:
        query.order = request.query_params.get("orderby", STUDY_ORDER)
        query.study_order()  # a 400 naming the orders there are, before any search
    elif "orderby" in request.query_params:
        raise DicomWebError(400, "orderby orders study searches only")
    visible = caller.visible_projects(Action.FIND)
    if visible is not None:
        if not visible:
            return None, include
        query.projects = sorted(visible)
    return query, include


def _answer(
    request: Request, caller: Principal, datasets: list[dict[str, Any]], study: str = ""
) -> JSONResponse:
    web_access(request).audit.record(
        caller, Action.FIND, ALLOWED, study=study, detail=f"{request.url.path}: {len(datasets)}"
    )
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
def search_studies(request: Request, caller: Searcher) -> JSONResponse:
    """Studies matching the query parameters, as DICOM JSON."""
    _accepts_json(request)
    query, _ = _scoped_query(request, caller, {}, studies=True)
    base = dicomweb_base(request)
    studies = _index(request).find_studies(query) if query else []
    return _answer(
        request,
        caller,
        [
            with_retrieve_url(
                to_dicom_json(study, STUDY_KEYWORDS), f"{base}/studies/{study.StudyInstanceUID}"
            )
            for study in studies
        ],
    )


def _series(request: Request, caller: Principal, fixed: dict[str, str]) -> JSONResponse:
    _accepts_json(request)
    query, _ = _scoped_query(request, caller, fixed)
    base = dicomweb_base(request)
    found = _index(request).find_series(query) if query else []
    return _answer(
        request,
        caller,
        [
            with_retrieve_url(
                to_dicom_json(series, SERIES_KEYWORDS),
                f"{base}/studies/{series.StudyInstanceUID}/series/{series.SeriesInstanceUID}",
            )
            for series in found
        ],
        fixed.get("StudyInstanceUID", ""),
    )


@router.get("/series", summary="QIDO-RS: search for series")
def search_series(request: Request, caller: Searcher) -> JSONResponse:
    """Series of any study matching the query parameters."""
    return _series(request, caller, {})


@router.get("/studies/{study}/series", summary="QIDO-RS: search for series of a study")
def search_study_series(study: str, request: Request, caller: Searcher) -> JSONResponse:
    """Series of one study matching the query parameters."""
    return _series(request, caller, {"StudyInstanceUID": require_uid(study)})


def _instances(request: Request, caller: Principal, fixed: dict[str, str]) -> JSONResponse:
    _accepts_json(request)
    query, include = _scoped_query(request, caller, fixed)
    tags = _include_tags(include)
    base = dicomweb_base(request)
    records = _index(request).find_instances(query, with_header=bool(tags)) if query else []
    return _answer(
        request,
        caller,
        [_instance_json(record, tags, base) for record in records],
        fixed.get("StudyInstanceUID", ""),
    )


@router.get("/instances", summary="QIDO-RS: search for instances")
def search_instances(request: Request, caller: Searcher) -> JSONResponse:
    """Instances of any study matching the query parameters."""
    return _instances(request, caller, {})


@router.get("/studies/{study}/instances", summary="QIDO-RS: search for instances of a study")
def search_study_instances(study: str, request: Request, caller: Searcher) -> JSONResponse:
    """Instances of one study matching the query parameters."""
    return _instances(request, caller, {"StudyInstanceUID": require_uid(study)})


@router.get(
    "/studies/{study}/series/{series}/instances",
    summary="QIDO-RS: search for instances of a series",
)
def search_series_instances(
    study: str, series: str, request: Request, caller: Searcher
) -> JSONResponse:
    """Instances of one series matching the query parameters."""
    return _instances(
        request,
        caller,
        {"StudyInstanceUID": require_uid(study), "SeriesInstanceUID": require_uid(series)},
    )
