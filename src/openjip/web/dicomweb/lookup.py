"""Which stored instances a WADO-RS path names for a caller: the study, series and instance UIDs
of the path, within the caller's projects. Nothing found answers 404 (audited), the same for
another project's objects as for absent ones, so their existence is not revealed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from openjip.access import ALLOWED, DENIED, Action, Principal
from openjip.index import HeaderText, InstanceRecord, Query
from openjip.web.access import require, web_access
from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.dicomweb.urls import require_uid

Found = TypeVar("Found")
Reader = Annotated[Principal, Depends(require(Action.GET))]
"""The caller of a retrieving route: anyone who may GET (within their projects)."""
PIXEL_PEEK = ("00280010", "00280100")
"""Rows and BitsAllocated: whether a header is an image's, and how wide its pixels are."""


def matching_instances(
    request: Request,
    caller: Principal,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> list[InstanceRecord]:
    """The instances under a WADO-RS path that ``caller`` may retrieve (without headers)."""
    index = request.app.state.backends.index
    return _lookup(request, caller, index.find_instances, study, series, instance)


def matching_headers(
    request: Request,
    caller: Principal,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> list[HeaderText]:
    """The headers (as stored JSON text, peeking at :data:`PIXEL_PEEK`) of those instances."""
    index = request.app.state.backends.index

    def find(query: Query) -> list[HeaderText]:
        return index.find_header_texts(query, PIXEL_PEEK)

    return _lookup(request, caller, find, study, series, instance)


def _lookup(
    request: Request,
    caller: Principal,
    find: Callable[[Query], list[Found]],
    study: str,
    series: str | None,
    instance: str | None,
) -> list[Found]:
    query = Query(StudyInstanceUID=[require_uid(study)])
    if series is not None:
        query.SeriesInstanceUID = [require_uid(series)]
    if instance is not None:
        query.SOPInstanceUID = [require_uid(instance)]
    visible = caller.visible_projects(Action.GET)
    if visible is not None:
        query.projects = sorted(visible)
    found = find(query) if visible is None or visible else []
    audit = web_access(request).audit
    if not found:
        audit.record(caller, Action.GET, DENIED, study=study, detail=f"404 {request.url.path}")
        raise DicomWebError(404, f"nothing stored at {request.url.path}")
    audit.record(caller, Action.GET, ALLOWED, study=study, detail=request.url.path)
    return found
