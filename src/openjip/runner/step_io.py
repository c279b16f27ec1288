"""A step's inputs and outputs in its analysis pod: ``python -m openjip.runner.step_io
fetch|publish``.

Runs in the openjip image before and after the operator's container (see
:mod:`openjip.runner.kubernetes`): ``fetch`` copies the step's inputs from the object store into
the pod's work folder, ``publish`` uploads and indexes what the operator wrote and leaves the
summary where the provider's XCom sidecar reads it. The same code as the local runner's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from openjip.config import get_settings
from openjip.index import open_index
from openjip.runner.kubernetes import REQUEST_ENV, WORK_DIR, request_from_json
from openjip.runner.local import LocalStepRunner
from openjip.storage import open_store

XCOM_FILE = Path("/airflow/xcom/return.json")
"""Where KubernetesPodOperator's sidecar picks up the task's return value."""


def main(argv: list[str]) -> int:
    """Run the phase named in ``argv`` for the request in the environment."""
    if len(argv) != 1 or argv[0] not in ("fetch", "publish"):
        print("usage: python -m openjip.runner.step_io fetch|publish", file=sys.stderr)
        return 2
    settings = get_settings()
    request = request_from_json(os.environ[REQUEST_ENV])
    runner = LocalStepRunner(open_store(settings), open_index(settings), Path(WORK_DIR))
    if argv[0] == "fetch":
        runner.fetch_inputs(request, Path(WORK_DIR) / "input")
        return 0
    outcome = runner.publish_outputs(request, Path(WORK_DIR) / "output")
    XCOM_FILE.parent.mkdir(parents=True, exist_ok=True)
    XCOM_FILE.write_text(json.dumps(outcome.to_dict()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
