"""What an operator's code calls: its inputs, output folder, params, progress and logging.

Reads the environment set by the runner (see :mod:`openjip.sdk.contract`); stdlib only.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from openjip.sdk.contract import (
    INPUT_ENV,
    OPERATOR_ENV,
    OUTPUT_ENV,
    PARAMS_ENV,
    format_error,
    format_progress,
)

log = logging.getLogger("openjip.operator")
"""Logger of the operator: lines go to stderr and reach the step's log (Airflow task log)."""

if not log.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False


class StepError(Exception):
    """An expected failure with a message for the user (no traceback is printed)."""


def _env_dir(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise StepError(f"{name} is not set: start the operator with `openjip operator run`")
    return Path(value)


def input_dir() -> Path:
    """The step's input directory (``OPENJIP_STEP_INPUT``)."""
    path = _env_dir(INPUT_ENV)
    if not path.is_dir():
        raise StepError(f"input directory {path} does not exist")
    return path


def output_dir() -> Path:
    """The step's output directory (``OPENJIP_STEP_OUTPUT``), created if missing."""
    path = _env_dir(OUTPUT_ENV)
    path.mkdir(parents=True, exist_ok=True)
    return path


def params() -> dict[str, Any]:
    """The step's params (``OPENJIP_STEP_PARAMS``), validated and defaulted by the runner."""
    raw = os.environ.get(PARAMS_ENV, "") or "{}"
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise StepError(f"{PARAMS_ENV} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise StepError(f"{PARAMS_ENV} must be a JSON object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class OperatorIdentity:
    """Which operator is running (``OPENJIP_OPERATOR``), for provenance in what it writes."""

    name: str
    version: str


def operator() -> OperatorIdentity:
    """The running operator's name and version; ``unknown`` parts when started by hand."""
    name, _, version = os.environ.get(OPERATOR_ENV, "").partition("@")
    return OperatorIdentity(name or "unknown", version or "unknown")


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


@dataclass(frozen=True)
class StepInput:
    """One unit of input: a series folder (or the whole input directory when it is flat)."""

    name: str
    path: Path
    nested: bool
    """True when the input directory holds one subfolder per series."""

    def files(self) -> list[Path]:
        """Every regular file of this input, recursively, sorted; hidden files are left out."""
        return sorted(
            p
            for p in self.path.rglob("*")
            if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(self.path).parts)
        )

    def output_dir(self) -> Path:
        """Where results of this input go: ``OUTPUT/<name>/`` for nested inputs, else ``OUTPUT``."""
        path = output_dir() / self.name if self.nested else output_dir()
        path.mkdir(parents=True, exist_ok=True)
        return path


def inputs() -> list[StepInput]:
    """The inputs of the step: one per subfolder of the input directory, or one when it is flat."""
    root = input_dir()
    folders = sorted(p for p in root.iterdir() if p.is_dir() and _visible(p))
    if not folders:
        return [StepInput(name=root.name, path=root, nested=False)]
    loose = [p.name for p in root.iterdir() if p.is_file() and _visible(p)]
    if loose:
        log.warning("ignoring %d file(s) next to the series folders: %s", len(loose), loose[:3])
    return [StepInput(name=p.name, path=p, nested=True) for p in folders]


def progress(fraction: float, message: str = "") -> None:
    """Report how far the step is (0..1) with a short message; shown as a progress bar."""
    sys.stdout.write(format_progress(fraction, message) + "\n")
    sys.stdout.flush()


def fail(message: str) -> NoReturn:
    """Stop the step as failed with ``message`` (exit code 1)."""
    raise StepError(message)


def run(main: Callable[[], object]) -> NoReturn:
    """Run ``main`` as the operator's entrypoint and exit with the contract's exit code.

    A :class:`StepError` becomes the step's failure message; any other exception too, after its
    traceback went to the log, so a crash is never silent.
    """
    try:
        main()
    except StepError as exc:
        _exit_failed(str(exc))
    except KeyboardInterrupt:
        _exit_failed("interrupted")
    # The operator's boundary: every error must become an exit code and a message line.
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc(file=sys.stderr)
        _exit_failed(f"{type(exc).__name__}: {exc}")
    sys.stdout.flush()
    sys.exit(0)


def _exit_failed(message: str) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.write(format_error(message) + "\n")
    sys.stderr.flush()
    sys.exit(1)
