"""The Images page of the clinician's path, served by the web service at ``/images/`` and shown
inside Airflow's UI by the openjip Airflow plugin: search patients, studies and series, see
thumbnails, select, run a workflow on the selection, open results in the viewer, download
non-DICOM results. :mod:`search` queries the index, :mod:`runs` starts runs and finds results;
the page itself is ``static/index.html`` with ``static/images.js``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from openjip.access import Action, Principal
from openjip.airflow.client import AirflowClient, AirflowError
from openjip.cohorts.selection import (
    Cohort,
    Selection,
    SelectionError,
    list_cohorts,
    load_cohort,
    save_cohort,
)
from openjip.index import MetadataIndex, Query
from openjip.records import NotAnOutputKey, parse_output_key
from openjip.storage import ObjectStore
from openjip.web.access import current_principal, require
from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.images.runs import (
    run_conf,
    run_outputs,
    step_states,
    viewer_url,
)
from openjip.web.images.search import search, search_query
from openjip.workflows.loader import discover_specs, workflow_dirs

BASE = "/images/"
STATIC = Path(__file__).parent / "static"
router = APIRouter(tags=["images"])
LoggedIn = Annotated[Principal, Depends(current_principal)]
Searcher = Annotated[Principal, Depends(require(Action.FIND))]
Trigger = Annotated[Principal, Depends(require(Action.TRIGGER))]
RunViewer = Annotated[Principal, Depends(require(Action.VIEW_RUNS))]


def _projects(caller: Principal, action: Action) -> list[str] | None:
    """The projects ``caller`` may touch with ``action``: ``None`` for all."""
    visible = caller.visible_projects(action)
    return None if visible is None else sorted(visible)


def _index(request: Request) -> MetadataIndex:
    return request.app.state.backends.index


def _store(request: Request) -> ObjectStore:
    return request.app.state.backends.store


def _airflow_refused(error: AirflowError) -> DicomWebError:
    """Airflow's refusal of a request as the page's error: its 4xx, or 502 when it is down."""
    return DicomWebError(error.status if 400 <= error.status < 500 else 502, str(error))


def _visible(
    request: Request, caller: Principal, outputs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The outputs whose source series is of the caller's projects (all, for an admin)."""
    projects = _projects(caller, Action.VIEW_RUNS)
    if projects is None:
        return outputs
    sources = sorted({output["series"] for output in outputs if output["series"]})
    seen = set()
    if sources and projects:
        query = Query(SeriesInstanceUID=sources, projects=projects)
        seen = {series.SeriesInstanceUID for series in _index(request).find_series(query)}
    return [output for output in outputs if output["series"] in seen]


@router.get(BASE, include_in_schema=False)
def images_page(_: LoggedIn) -> FileResponse:
    """The page."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get(BASE + "images.js", include_in_schema=False)
def images_script(_: LoggedIn) -> FileResponse:
    """The page's script."""
    return FileResponse(STATIC / "images.js", media_type="text/javascript")


@router.get(BASE + "api/search", summary="Images page: search studies, grouped by patient")
def search_images(request: Request, caller: Searcher) -> JSONResponse:
    """Patients with their studies and series matching name, patient_id, from, to, modality,
    body_part, description, accession and project, of the caller's projects only, in the
    order ``sort`` names (``-StudyDate``: newest first, the default)."""
    query = search_query(request.query_params)
    visible = _projects(caller, Action.FIND)
    wanted = [request.query_params["project"]] if request.query_params.get("project") else None
    if visible is not None and wanted is not None:
        wanted = [project for project in wanted if project in visible]
    scope = wanted if wanted is not None else visible
    if scope is not None and not scope:
        return JSONResponse({"patients": [], "truncated": False})
    query.projects = list(scope or [])
    return JSONResponse(search(_index(request), query))


@router.get(BASE + "api/workflows", summary="Images page: the workflows a selection can run")
def list_workflows(request: Request, _: LoggedIn) -> JSONResponse:
    """Every valid workflow spec with the params of its form."""
    catalog = discover_specs(workflow_dirs(request.app.state.settings))
    return JSONResponse(
        [
            {
                "id": spec.id,
                "title": spec.title or spec.id,
                "description": spec.description,
                "params": {
                    name: param.model_dump(mode="json", exclude_none=True)
                    for name, param in spec.params.items()
                },
            }
            for spec in catalog.specs.values()
        ]
    )


@router.post(BASE + "api/runs", summary="Images page: run a workflow on a selection")
async def start_run(request: Request, caller: Trigger) -> JSONResponse:
    """Body ``{"workflow", "patients", "studies", "series", "params"}``: the selection is
    resolved to series and the workflow started in Airflow with the params."""
    body: Any = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("workflow"), str):
        raise DicomWebError(400, 'the body must be {"workflow": ID, "series": [...], ...}')
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise DicomWebError(400, "params must be an object")
    settings = request.app.state.settings
    series = await run_in_threadpool(_selected_series, request, body, caller)

    def trigger() -> dict[str, Any]:
        client = AirflowClient.from_settings(settings)
        try:
            return client.trigger(body["workflow"], None, run_conf(series, params))
        finally:
            client.close()

    try:
        run = await run_in_threadpool(trigger)
    except AirflowError as error:
        raise DicomWebError(
            error.status if 400 <= error.status < 500 else 502, str(error)
        ) from error
    run_id = str(run.get("dag_run_id", ""))
    return JSONResponse(
        {
            "dag_id": body["workflow"],
            "run_id": run_id,
            "series": series,
            "airflow_url": f"{settings.airflow_url}/dags/{body['workflow']}/runs/{run_id}",
        },
        status_code=201,
    )


def _selected_series(request: Request, body: dict[str, Any], caller: Principal) -> list[str]:
    """The series of the body's selection, or of its saved ``cohort``, that the caller may run
    workflows on; 400 saying why not."""
    try:
        if body.get("cohort"):
            selection = load_cohort(_store(request), str(body["cohort"])).selection
        else:
            selection = Selection.from_json(body)
        return selection.resolve(_index(request), _projects(caller, Action.TRIGGER))
    except SelectionError as error:
        raise DicomWebError(400, str(error)) from error


@router.get(BASE + "api/cohorts", summary="Images page: the saved cohorts")
def cohorts(request: Request, _: Searcher) -> JSONResponse:
    """Every saved cohort with its selection."""
    return JSONResponse([cohort.to_json() for cohort in list_cohorts(_store(request))])


@router.post(BASE + "api/cohorts", summary="Images page: save a selection as a cohort")
async def save_selection(request: Request, caller: Trigger) -> JSONResponse:
    """Body ``{"name", "description", "patients", "studies", "series"}``; a cohort of the same
    name is replaced. Workflows with ``input: {kind: cohort, cohort: NAME}`` run on it."""
    body: Any = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise DicomWebError(400, 'the body must be {"name": NAME, "series": [...], ...}')
    try:
        cohort = Cohort(
            name=body["name"].strip(),
            selection=Selection.from_json(body),
            description=str(body.get("description", "")),
            created_by=caller.name,
        )
        saved = await run_in_threadpool(save_cohort, _store(request), cohort)
    except SelectionError as error:
        raise DicomWebError(400, str(error)) from error
    return JSONResponse(saved.to_json(), status_code=201)


@router.get(BASE + "api/runs/{dag_id}/{run_id}", summary="Images page: a run's progress")
def run_progress(dag_id: str, run_id: str, request: Request, caller: RunViewer) -> JSONResponse:
    """The run's state, each step's state (a failed one with its reason) and its outputs,
    each with a download URL."""
    client = AirflowClient.from_settings(request.app.state.settings)
    try:
        run = client.run(dag_id, run_id)
        steps = step_states(client, dag_id, run_id)
    except AirflowError as error:
        raise DicomWebError(
            error.status if 400 <= error.status < 500 else 502, str(error)
        ) from error
    finally:
        client.close()
    outputs = _visible(request, caller, run_outputs(_store(request), dag_id, run_id))
    for output in outputs:
        output["download"] = f"{BASE}results/{output['key']}"
    return JSONResponse({"state": run.get("state", ""), "steps": steps, "outputs": outputs})


@router.get(BASE + "runs/{dag_id}/{run_id}/viewer", summary="Open a run's result in the viewer")
def open_in_viewer(dag_id: str, run_id: str, request: Request, _: RunViewer) -> RedirectResponse:
    """303 to the viewer showing the run's result over its source study."""
    return RedirectResponse(viewer_url(_store(request), _index(request), dag_id, run_id), 303)


@router.get(BASE + "results/{key:path}", summary="Download a step output")
def download_output(key: str, request: Request, caller: RunViewer) -> StreamingResponse:
    """One output file of a run (``runs/...`` keys only) whose source series the caller may
    see; 404 otherwise, as for a missing one."""
    try:
        parts = parse_output_key(key)
    except NotAnOutputKey as error:
        raise DicomWebError(404, f"{key!r} is not a run output: {error}") from error
    store = _store(request)
    visible = _visible(request, caller, [{"series": parts.series_uid}])
    if not visible or store.head(key) is None:
        raise DicomWebError(404, f"no output {key!r}")
    name = parts.path.rsplit("/", 1)[-1]
    return StreamingResponse(
        iter([store.get(key)]),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
