"""The object-key layout of the store: received instances under ``dicom/``, step outputs under
``runs/``; keys are built and read back only here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from openjip.records.uids import is_valid_uid

DICOM_PREFIX = "dicom/"
"""Where received (and ingested) DICOM instances land: ``dicom/<study>/<series>/<sop>.dcm``."""
RUNS_PREFIX = "runs/"
"""Where every step output lands: ``runs/<dag>/<run>/<step>/<series>/<path>``."""
ALL_SERIES = "all"
"""Series part of the output keys of a step that ran once over every series."""

_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._\-=+@]")


def instance_key(study_uid: str, series_uid: str, sop_uid: str) -> str:
    """The object key of a received instance: ``dicom/<study>/<series>/<sop>.dcm``."""
    return f"{DICOM_PREFIX}{study_uid}/{series_uid}/{sop_uid}.dcm"


def key_safe(text: str) -> str:
    """``text`` with characters object keys do not allow (``:`` of run ids) turned to ``_``."""
    return _UNSAFE_KEY_CHARS.sub("_", text)


def output_prefix(dag_id: str, run_id: str, step: str, series: str) -> str:
    """``runs/<dag>/<run>/<step>/<series>/``, every part key-safe (``series`` is a
    SeriesInstanceUID or :data:`ALL_SERIES`)."""
    return RUNS_PREFIX + "/".join(key_safe(part) for part in (dag_id, run_id, step, series)) + "/"


class NotAnOutputKey(ValueError):
    """An object key that does not fit ``runs/<dag>/<run>/<step>/<series>/<path>``."""


@dataclass(frozen=True)
class OutputKey:
    """The parts of a step output's object key, as :func:`output_prefix` wrote them: key-safe,
    so a run id's ``:`` comes back as ``_``."""

    dag_id: str
    run_id: str
    step: str
    series_uid: str
    """The source series; empty for a step over every series (``all`` in the key)."""
    path: str
    """The file's path below the step's output folder."""


def parse_output_key(key: str) -> OutputKey:
    """The parts of an output key; :class:`NotAnOutputKey` saying what does not fit."""
    if not key.startswith(RUNS_PREFIX):
        raise NotAnOutputKey(f"not under {RUNS_PREFIX}")
    parts = key[len(RUNS_PREFIX) :].split("/")
    if len(parts) < 5 or not all(parts):
        raise NotAnOutputKey("expected runs/<workflow>/<run>/<step>/<series>/<file>")
    unsafe = [part for part in parts if key_safe(part) != part]
    if unsafe:
        raise NotAnOutputKey(f"{unsafe[0]!r} has characters output keys never contain")
    dag_id, run_id, step, series = parts[:4]
    if series != ALL_SERIES and not is_valid_uid(series):
        raise NotAnOutputKey(f"{series!r} is neither a SeriesInstanceUID nor {ALL_SERIES!r}")
    return OutputKey(
        dag_id=dag_id,
        run_id=run_id,
        step=step,
        series_uid="" if series == ALL_SERIES else series,
        path="/".join(parts[4:]),
    )
