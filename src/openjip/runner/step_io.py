"""A step's inputs and outputs in its analysis pod: ``python -m openjip.runner.step_io
fetch|publish``.

Runs in the openjip image before and after the operator's container (see
:mod:`openjip.runner.kubernetes`), with nothing but the web service's URL and the step's grant
(:mod:`openjip.runner.grants`): ``fetch`` downloads the step's inputs from the web service's
``/steps/inputs`` into the pod's work folder; ``publish`` sends every output file to
``/steps/outputs/<path>``, where the web service stores and indexes it as the local runner
would, and leaves the summary where the provider's XCom sidecar reads it. The pod needs no
store or index credential and no route to either.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from openjip.runner.base import StepOutcome
from openjip.runner.kubernetes import GRANT_ENV, WEB_URL_ENV, WORK_DIR

XCOM_FILE = Path("/airflow/xcom/return.json")
"""Where KubernetesPodOperator's sidecar picks up the task's return value."""
TIMEOUT_SECONDS = 300


class StepIOFailed(Exception):
    """The web service refused or could not be reached; the message says which."""


class StepClient:
    """The ``/steps`` routes of the web service at ``url``, under ``grant``."""

    def __init__(self, url: str, grant: str) -> None:
        self.url = url.rstrip("/") + "/steps"
        self.grant = grant

    def _open(self, method: str, path: str, body: Any = None, size: int | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.url}/{urllib.parse.quote(path)}", data=body, method=method
        )
        request.add_header("Authorization", f"Bearer {self.grant}")
        if size is not None:
            request.add_header("Content-Length", str(size))
            request.add_header("Content-Type", "application/octet-stream")
        try:
            return urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")
            raise StepIOFailed(f"{method} {path}: {error.code} {detail}") from None
        except OSError as error:
            raise StepIOFailed(f"{method} {path}: web service unreachable: {error}") from None

    def fetch(self, input_dir: Path) -> int:
        """Download every input of the step into ``input_dir``; how many."""
        with self._open("GET", "inputs") as answer:
            inputs = json.load(answer)["inputs"]
        for item in inputs:
            target = input_dir.joinpath(*item["path"].split("/"))
            if input_dir.resolve() not in target.resolve().parents:
                raise StepIOFailed(f"input path {item['path']!r} leaves the input folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._open("GET", f"inputs/{item['path']}") as answer, target.open("wb") as out:
                shutil.copyfileobj(answer, out)
        return len(inputs)

    def publish(self, output_dir: Path) -> StepOutcome:
        """Send every output file; the step's outcome as the web service published it."""
        outcome = StepOutcome()
        for path in sorted(p for p in output_dir.rglob("*") if p.is_file()):
            relative = "/".join(path.relative_to(output_dir).parts)
            with (
                path.open("rb") as body,
                self._open("PUT", f"outputs/{relative}", body, path.stat().st_size) as answer,
            ):
                part = json.load(answer)
            outcome.output_keys += part["output_keys"]
            outcome.instances += part["instances"]
            outcome.dicom_series += [
                s for s in part["dicom_series"] if s not in outcome.dicom_series
            ]
        return outcome


def main(argv: list[str]) -> int:
    """Run the phase named in ``argv`` with the grant in the environment."""
    if len(argv) != 1 or argv[0] not in ("fetch", "publish"):
        print("usage: python -m openjip.runner.step_io fetch|publish", file=sys.stderr)
        return 2
    client = StepClient(os.environ[WEB_URL_ENV], os.environ[GRANT_ENV])
    work = Path(os.environ.get("OPENJIP_STEP_WORK_DIR", WORK_DIR))
    try:
        if argv[0] == "fetch":
            print(f"fetched {client.fetch(work / 'input')} inputs")
            return 0
        outcome = client.publish(work / "output")
    except StepIOFailed as failure:
        print(f"step {argv[0]} failed: {failure}", file=sys.stderr)
        return 1
    xcom = Path(os.environ.get("OPENJIP_STEP_XCOM_FILE", XCOM_FILE))
    xcom.parent.mkdir(parents=True, exist_ok=True)
    xcom.write_text(json.dumps(outcome.to_dict()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
