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
from typing import Any

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

log = logging.getLogger(__name__)


def is_dicom_file(path: Path) -> bool:
    """Whether ``path`` is a DICOM Part-10 file (``DICM`` after the 128-byte preamble)."""
    with path.open("rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


class LocalStepRunner(StepRunner):
    """Runs steps as subprocesses in work dirs under ``work_root``."""

    def __init__(self, store: ObjectStore, index: MetadataIndex, work_root: Path) -> None:
        self.store = store
        self.index = index
        self.work_root = work_root

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
            try:
                run_operator_locally(
                    operator, input_dir, output_dir, request.params, on_progress=on_progress
                )
            except OperatorFailed as failure:
                raise StepFailed(str(failure)) from failure
            return self.publish_outputs(request, output_dir)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def fetch_inputs(self, request: StepRequest, input_dir: Path) -> int:
        """Download the step's inputs: flat for one series, one subfolder per series otherwise."""
        count = 0
        for series_uid in request.series_uids:
            target = input_dir if len(request.series_uids) == 1 else input_dir / series_uid
            target.mkdir(parents=True, exist_ok=True)
            if request.input_from is None:
                keys = [
                    record.object_key
                    for record in self.index.find_instances(Query(SeriesInstanceUID=[series_uid]))
                ]
                if not keys:
                    raise StepFailed(f"series {series_uid} is not in the index")
                for key in keys:
                    self.store.download(key, target / key.rsplit("/", 1)[-1])
            else:
                prefix = request.output_prefix(step=request.input_from, series=series_uid)
                keys = [info.key for info in self.store.list(prefix)]
                if not keys:
                    raise StepFailed(f"step {request.input_from} left no output for {series_uid}")
                for key in keys:
                    self.store.download(key, target / key[len(prefix) :])
            count += len(keys)
        return count

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
        from openjip.ingest import Ingestor

        ingestor = Ingestor(self.store, self.index)
        outcome = StepOutcome()
        prefix = request.output_prefix()
        source = request.series_uids[0] if len(request.series_uids) == 1 else ""
        projects = self._projects_of(request.series_uids)
        run_outputs = []
        for path in sorted(p for p in output_dir.rglob("*") if p.is_file()):
            key = prefix + "/".join(key_safe(part) for part in path.relative_to(output_dir).parts)
            outcome.output_keys.append(key)
            if not is_dicom_file(path):
                info = self.store.put_file(key, path)
                run_outputs.append(
                    RunOutput(
                        object_key=key,
                        workflow=request.dag_id,
                        run_id=key_safe(request.run_id),
                        step=request.step,
                        SeriesInstanceUID=source,
                        size=info.size,
                        created_at=time.time(),
                    )
                )
            else:  # stored once, at its output key, and indexed there
                result = ingestor.ingest_result(
                    path, object_key=key, key_series=source, projects=projects
                )
                outcome.instances += 1
                if result.record.SeriesInstanceUID not in outcome.dicom_series:
                    outcome.dicom_series.append(result.record.SeriesInstanceUID)
        if run_outputs:
            self.index.add_run_outputs(run_outputs)
        log.info(
            "step %s: %d outputs under %s, %d DICOM instances in %s",
            request.step,
            len(outcome.output_keys),
            prefix,
            outcome.instances,
            outcome.dicom_series,
        )
        return outcome
