"""Runs started from the Images page and their results: a selection (or a cohort) resolved to
series (:mod:`openjip.cohorts.selection`) and handed to Airflow; a run's DICOM result opened in
the viewer; its other outputs (NIfTI, JSON, CSV) downloaded from the object store."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlencode

import pydicom
from pydicom.errors import InvalidDicomError

from openjip.airflow.client import AirflowClient
from openjip.airflow.progress import PROGRESS_XCOM
from openjip.index import MetadataIndex, Query
from openjip.records import RUNS_PREFIX, NotAnOutputKey, key_safe, parse_output_key
from openjip.storage import ObjectStore
from openjip.web.dicomweb.errors import DicomWebError
from openjip.web.viewer import BASE as VIEWER_BASE
from openjip.workflows.spec import SERIES_PARAM


def run_conf(series: list[str], params: dict[str, Any]) -> dict[str, Any]:
    """The Airflow run conf: the form's params and the selected series."""
    if SERIES_PARAM in params:
        raise DicomWebError(400, f"{SERIES_PARAM!r} comes from the selection, not the params")
    return {**params, SERIES_PARAM: series}


def run_outputs(store: ObjectStore, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every output file of a run: ``{"key", "step", "series", "path", "size", "dicom"}``."""
    prefix = f"{RUNS_PREFIX}{key_safe(dag_id)}/{key_safe(run_id)}/"
    outputs = []
    for info in store.list(prefix):
        try:
            parts = parse_output_key(info.key)
        except NotAnOutputKey:
            continue
        outputs.append(
            {
                "key": info.key,
                "step": parts.step,
                "series": parts.series_uid,
                "path": parts.path,
                "size": info.size,
                "dicom": parts.path.lower().endswith(".dcm"),
            }
        )
    return outputs


def failure_reason(log: str) -> str:
    """The last error line of a failed task's log, in the words the step raised it with."""
    for line in reversed(log.splitlines()):
        if "StepFailed" in line or "Error" in line or "error" in line:
            return line.strip()[-300:]
    return ""


def step_states(client: AirflowClient, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Each task instance of the run: ``{"step", "series", "state", "note", "progress"}``; a
    failed one's note says why (from its log); a running or failed one's progress is the last
    the operator reported (``{"fraction", "message"}``, see :mod:`openjip.airflow.progress`),
    else ``None``."""
    steps = []
    for task in client.task_instances(dag_id, run_id):
        state = str(task.get("state") or "queued")
        note = str(task.get("note") or "")
        task_id, map_index = str(task["task_id"]), int(task.get("map_index", -1))
        progress = None
        if state in ("running", "failed"):
            pushed = client.xcom(dag_id, run_id, task_id, PROGRESS_XCOM, map_index=map_index)
            progress = _progress(pushed)
        if state == "failed" and not note:
            log = client.task_log(
                dag_id,
                run_id,
                task_id,
                try_number=int(task.get("try_number") or 1),
                map_index=map_index,
            )
            note = failure_reason(log)
        steps.append(
            {
                "step": task_id,
                "series": str(task.get("rendered_map_index") or ""),
                "state": state,
                "note": note,
                "progress": progress,
            }
        )
    return steps


def _progress(value: Any) -> dict[str, Any] | None:
    """A pushed progress as ``{"fraction", "message"}``; ``None`` for anything else."""
    if not isinstance(value, dict) or not isinstance(value.get("fraction"), int | float):
        return None
    return {"fraction": float(value["fraction"]), "message": str(value.get("message", ""))}


def _uids_of(data: bytes) -> tuple[str, str] | None:
    try:
        header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, EOFError, OSError, ValueError):
        return None
    return str(header.get("StudyInstanceUID", "")), str(header.get("SeriesInstanceUID", ""))


def viewer_url(store: ObjectStore, index: MetadataIndex, dag_id: str, run_id: str) -> str:
    """Where the viewer shows a run's result over its source study (``/viewer/viewer?...``):
    its first DICOM output, else the study of the series it ran on; 404 when it has neither."""
    outputs = run_outputs(store, dag_id, run_id)
    for output in outputs:
        if output["dicom"] and (uids := _uids_of(store.get(output["key"]))) and all(uids):
            study, series = uids
            query = {"StudyInstanceUIDs": study, "initialSeriesInstanceUID": series}
            return f"{VIEWER_BASE}viewer?{urlencode(query)}"
    sources = [output["series"] for output in outputs if output["series"]]
    if sources:
        found = index.find_series(Query(SeriesInstanceUID=sources[:1]))
        if found:
            return (
                f"{VIEWER_BASE}viewer?{urlencode({'StudyInstanceUIDs': found[0].StudyInstanceUID})}"
            )
    raise DicomWebError(404, f"run {run_id} of {dag_id} has no result to show yet")
