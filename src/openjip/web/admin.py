"""Admin routes of the web service: put a study into projects (``POST``) or move it to exactly
these projects (``PUT``) at ``/admin/studies/{study}/projects``; admins only, audited. The
study's projects are also written beside its images (:class:`~openjip.access.projects.
ProjectMarkers`), so ``openjip index rebuild`` gives them back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from openjip.access import ALLOWED, Action, Principal
from openjip.access.projects import ProjectMarkers, check_project_names
from openjip.index import Query
from openjip.web.access import require, web_access
from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.dicomweb.urls import require_uid

router = APIRouter(prefix="/admin", tags=["admin"])
Admin = Annotated[Principal, Depends(require(Action.ADMINISTER))]


class StudyProjects(BaseModel):
    """The projects to add a study to, or to move it to."""

    projects: list[str] = Field(min_length=1)


def _assign(
    request: Request, caller: Principal, study: str, body: StudyProjects, *, replace: bool
) -> JSONResponse:
    try:
        projects = check_project_names(body.projects)
    except ValueError as error:
        raise DicomWebError(400, str(error)) from error
    backends = request.app.state.backends
    index = backends.index
    if not index.set_study_projects(require_uid(study), projects, replace=replace):
        raise DicomWebError(404, f"no study {study}")
    (record,) = index.find_studies(Query(StudyInstanceUID=[study], limit=1))
    ProjectMarkers(backends.store).replace(study, record.projects)  # kept for index rebuild
    web_access(request).audit.record(
        caller,
        "move_study" if replace else "add_study",
        ALLOWED,
        study=study,
        detail=f"projects {', '.join(projects)}",
    )
    return JSONResponse({"StudyInstanceUID": study, "projects": record.projects})


@router.post("/studies/{study}/projects", summary="Add a study to projects")
def add_study(study: str, body: StudyProjects, request: Request, caller: Admin) -> JSONResponse:
    """The study joins ``projects`` (keeping the ones it has)."""
    return _assign(request, caller, study, body, replace=False)


@router.put("/studies/{study}/projects", summary="Move a study to projects")
def move_study(study: str, body: StudyProjects, request: Request, caller: Admin) -> JSONResponse:
    """The study belongs to ``projects`` only from now on."""
    return _assign(request, caller, study, body, replace=True)
