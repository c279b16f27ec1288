"""The ``local`` StepRunner: the operator's entrypoint as a subprocess on this machine.

Inputs are fetched from the object store into a work dir (the DICOM series from the index, or an
earlier step's outputs from ``runs/``), the operator runs there, and its outputs are uploaded
under ``runs/<dag>/<run>/<step>/<series>/``. DICOM outputs go through the
:class:`~openjip.ingest.Ingestor` instead, stored once at that key and indexed like received
series, with ``derived_from`` naming the source series (:mod:`openjip.ingest.results`); other
outputs are recorded in the index as :class:`~openjip.index.RunOutput` rows of the run.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openjip.access.confinement import Confinement
from openjip.index.base import DEFAULT_PROJECTS, MetadataIndex, Query, RunOutput
from openjip.runner.base import (
    ProgressCallback,
    StepFailed,
    StepOutcome,
    StepRequest,
    StepRunner,
    key_safe,
)
from openjip.storage.base import ObjectStore
from openjip.workflows.spec import split_operator_ref

if TYPE_CHECKING:
    from openjip.ingest import Ingestor

log = logging.getLogger(__name__)
STUDY_INSTANCE_UID_TAG = "0020000D"
"""(0020,000D) in a DICOM JSON header."""


def is_dicom_file(path: Path) -> bool:
    """Whether ``path`` is a DICOM Part-10 file (``DICM`` after the 128-byte preamble)."""
    with path.open("rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


class LocalStepRunner(StepRunner):
    """Runs steps as subprocesses in work dirs under ``work_root``.

    With ``private`` (the site's ``OPENJIP_HOME``) each step's process is confined
    (:mod:`openjip.access.confinement`): it sees its staged inputs, writes its output folder, and
    reaches nothing else of the site — no store, index, other series or project, no secret, no
    TCP connection to the site's services.
    """

    def __init__(
        self,
        store: ObjectStore,
        index: MetadataIndex,
        work_root: Path,
        *,
        private: Path | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self.work_root = work_root
        self.private = private

    def run(
        self,
        request: StepRequest,
        context: Mapping[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> StepOutcome:
        """Fetch inputs, run the operator (its progress to ``on_progress``), upload and index
        its outputs."""
        from openjip.operators import StepFailed as OperatorFailed
        from openjip.operators import find_operator, run_operator_locally

        name, version = split_operator_ref(request.operator)
        operator = find_operator(name, version)
        self.work_root.mkdir(parents=True, exist_ok=True)
        work = Path(
            tempfile.mkdtemp(prefix=f"{request.dag_id}-{request.step}-", dir=self.work_root)
        )
        try:
            input_dir, output_dir = work / "input", work / "output"
            output_dir.mkdir(parents=True)
            count = self.fetch_inputs(request, input_dir)
            log.info("step %s: %d input files in %s", request.step, count, input_dir)
            confinement = None
            if self.private is not None:
                confinement = Confinement(private=self.private, scratch=work / "scratch")
            try:
                run_operator_locally(
                    operator,
                    input_dir,
                    output_dir,
                    request.params,
                    confinement=confinement,
                    on_progress=on_progress,
                )
            except OperatorFailed as failure:
                raise StepFailed(str(failure)) from failure
            return self.publish_outputs(request, output_dir)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def fetch_inputs(self, request: StepRequest, input_dir: Path) -> int:
        """Download the step's inputs: flat for one series, one subfolder per series otherwise."""
        inputs = self.input_objects(request)
        for path, key in inputs.items():
            target = input_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            self.store.download(key, target)
        return len(inputs)

    def input_objects(self, request: StepRequest) -> dict[str, str]:
        """The step's inputs: path in its input folder (``/``-separated) -> object key.

        Flat for one series, one subfolder per series otherwise; the DICOM series from the
        index, or the outputs an earlier step of the run left for each series.
        """
        inputs: dict[str, str] = {}
        for series_uid in request.series_uids:
            folder = "" if len(request.series_uids) == 1 else f"{series_uid}/"
            if request.input_from is None:
                keys = [
                    record.object_key
                    for record in self.index.find_instances(Query(SeriesInstanceUID=[series_uid]))
                ]
                if not keys:
                    raise StepFailed(f"series {series_uid} is not in the index")
                inputs.update((folder + key.rsplit("/", 1)[-1], key) for key in keys)
            else:
                prefix = request.output_prefix(step=request.input_from, series=series_uid)
                keys = [info.key for info in self.store.list(prefix)]
                if not keys:
                    raise StepFailed(f"step {request.input_from} left no output for {series_uid}")
                inputs.update((folder + key[len(prefix) :], key) for key in keys)
        return inputs

    def _check_study(self, ingestor: Ingestor, path: Path, projects: list[str], name: str) -> None:
        """A DICOM result may join a study only within the projects of the step's inputs: a
        step cannot add a study of another project to its own (and so make it visible)."""
        from openjip.ingest import InvalidInstance

        try:
            header = ingestor.parse(path).header
        except InvalidInstance:
            return  # refused by the ingest itself, with its reason
        study = str((header.get(STUDY_INSTANCE_UID_TAG, {}).get("Value") or [""])[0])
        existing = (
            self.index.find_studies(Query(StudyInstanceUID=[study], limit=1)) if study else []
        )
        if existing and not set(existing[0].projects) <= set(projects):
            raise StepFailed(
                f"result {name}: its study {study} lies outside the projects of the step's inputs"
            )

    def _projects_of(self, series_uids: list[str]) -> list[str]:
        """The projects of the input series: results belong where their inputs do."""
        if not series_uids:
            return list(DEFAULT_PROJECTS)
        inputs = self.index.find_series(Query(SeriesInstanceUID=list(series_uids)))
        return sorted({project for series in inputs for project in series.projects}) or list(
            DEFAULT_PROJECTS
        )

    def publish_outputs(self, request: StepRequest, output_dir: Path) -> StepOutcome:
        """Upload every output file; ingest DICOM ones, record the others as run outputs."""
        outcome = StepOutcome()
        projects = self._projects_of(request.series_uids)
        for path in sorted(p for p in output_dir.rglob("*") if p.is_file()):
            self.publish_file(request, path.relative_to(output_dir).parts, path, projects, outcome)
        log.info(
            "step %s: %d outputs under %s, %d DICOM instances in %s",
            request.step,
            len(outcome.output_keys),
            request.output_prefix(),
            outcome.instances,
            outcome.dicom_series,
        )
        return outcome

    def publish_file(
        self,
        request: StepRequest,
        parts: tuple[str, ...],
        path: Path,
        projects: list[str] | None = None,
        outcome: StepOutcome | None = None,
    ) -> StepOutcome:
        """Publish one output (``parts``: its path in the output folder) into ``outcome``:
        a DICOM file is ingested (stored once at its output key, in the ``projects`` of the
        inputs), any other file stored and recorded as a run output."""
        from openjip.ingest import Ingestor

        outcome = outcome if outcome is not None else StepOutcome()
        if not parts or any(part in ("", ".", "..") for part in parts):
            raise StepFailed(f"output path {'/'.join(parts)!r} is not a plain relative path")
        key = request.output_prefix() + "/".join(key_safe(part) for part in parts)
        source = request.series_uids[0] if len(request.series_uids) == 1 else ""
        outcome.output_keys.append(key)
        if not is_dicom_file(path):
            info = self.store.put_file(key, path)
            output = RunOutput(
                object_key=key,
                workflow=request.dag_id,
                run_id=key_safe(request.run_id),
                step=request.step,
                SeriesInstanceUID=source,
                size=info.size,
                created_at=time.time(),
            )
            self.index.add_run_outputs([output])
            return outcome
        if projects is None:
            projects = self._projects_of(request.series_uids)
        ingestor = Ingestor(self.store, self.index)
        self._check_study(ingestor, path, projects, "/".join(parts))
        result = ingestor.ingest_result(path, object_key=key, key_series=source, projects=projects)
        outcome.instances += 1
        if result.record.SeriesInstanceUID not in outcome.dicom_series:
            outcome.dicom_series.append(result.record.SeriesInstanceUID)
        return outcome
