"""The wire contract between a step runner and the operator process it starts.

Both sides import this module: the operator through :mod:`openjip.sdk`, the runners
(:mod:`openjip.operators`, the kubernetes pod builder) to set the environment and to read what the
operator prints. It is stdlib only, so it can be copied into any operator image.

The runner sets four environment variables:

``OPENJIP_STEP_INPUT``
    Directory of inputs: either one subfolder per series (each processed on its own) or, flat,
    the files of one series.
``OPENJIP_STEP_OUTPUT``
    Directory the operator writes its results to (exists, writable, initially empty).
``OPENJIP_STEP_PARAMS``
    JSON object of the step's params, already validated and completed with defaults.
``OPENJIP_OPERATOR``
    ``name@version`` of the operator being run (for provenance in the results it writes).

and, for an operator whose manifest lists ``secrets: [deid]``, ``OPENJIP_DEID_SECRET_FILE``:
the file holding the site's de-identification secret (read-only).

The operator reports on its standard streams:

* a progress line on stdout: ``OPENJIP_PROGRESS {"fraction": 0.5, "message": "slice 10/20"}``;
* an error line on stderr before a failing exit: ``OPENJIP_ERROR {"message": "no CT found"}``;
* any other line is a log line.

Exit code 0 is success. Any other exit code is a failure whose message is the last error line, or,
for an operator that does not print one, the last non-empty line on stderr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

INPUT_ENV = "OPENJIP_STEP_INPUT"
OUTPUT_ENV = "OPENJIP_STEP_OUTPUT"
PARAMS_ENV = "OPENJIP_STEP_PARAMS"
OPERATOR_ENV = "OPENJIP_OPERATOR"
DEID_SECRET_ENV = "OPENJIP_DEID_SECRET_FILE"
"""Only for an operator whose manifest asks for the ``deid`` secret: the file holding it."""

PROGRESS_PREFIX = "OPENJIP_PROGRESS "
ERROR_PREFIX = "OPENJIP_ERROR "


@dataclass(frozen=True)
class Progress:
    """How far a step is: ``fraction`` in [0, 1] and a short human message."""

    fraction: float
    message: str = ""


def format_progress(fraction: float, message: str = "") -> str:
    """The stdout line that reports ``fraction`` (clamped to [0, 1]) and ``message``."""
    clamped = min(1.0, max(0.0, float(fraction)))
    return PROGRESS_PREFIX + json.dumps({"fraction": clamped, "message": message})


def parse_progress(line: str) -> Progress | None:
    """The progress a stdout line reports, or None when it is a plain log line."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    try:
        data = json.loads(line[len(PROGRESS_PREFIX) :])
        return Progress(float(data["fraction"]), str(data.get("message", "")))
    except (ValueError, KeyError, TypeError):
        # A malformed progress line is still worth seeing: the caller logs it as text.
        return None


def format_error(message: str) -> str:
    """The stderr line that carries the failure message of a step."""
    return ERROR_PREFIX + json.dumps({"message": message})


def parse_error(line: str) -> str | None:
    """The failure message a stderr line carries, or None when it is a plain log line."""
    if not line.startswith(ERROR_PREFIX):
        return None
    try:
        data = json.loads(line[len(ERROR_PREFIX) :])
        return str(data["message"])
    except (ValueError, KeyError, TypeError):
        return line[len(ERROR_PREFIX) :].strip() or None
