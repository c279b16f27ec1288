"""A de-identification run over files: write each instance de-identified, quarantine burned-in
text, and prove the output: no identifying value of a source header may occur anywhere in the
bytes of its output file (private tags, nested sequences and all), else the run fails.

Instances are independent, so a run spreads them over worker processes; each writes its output
under a temporary name and the run renames it, so two sources that would give the same file
are caught before either is lost.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openjip.deid.instance import Leak, Quarantined, Refused, deidentify_instance, read_source
from openjip.deid.profile import load_table
from openjip.deid.walker import Deidentifier


@dataclass
class Report:
    options: list[str]
    instances: int = 0
    attributes: Counter[tuple[str, str]] = field(default_factory=Counter)
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    leaks: list[Leak] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)
    """(source file, de-identified file) of every instance written."""

    @property
    def check_passed(self) -> bool:
        return not self.leaks

    def failed(self, allow_quarantine: bool = False) -> bool:
        """Whether the run failed: a file failed, the check failed, or (unless allowed) an
        instance was quarantined."""
        return bool(self.failures or self.leaks or (self.quarantined and not allow_quarantine))

    def to_json(self) -> dict[str, Any]:
        table = load_table()
        attributes: dict[str, dict[str, int]] = {}
        for (name, outcome), count in sorted(self.attributes.items()):
            attributes.setdefault(name, {})[outcome] = count
        return {
            "profile": {
                "table": table["table"],
                "standard": table["standard"],
                "source": table["source"],
                "options": self.options,
            },
            "instances": self.instances,
            "attributes": attributes,
            "quarantined": [{"file": f, "reason": r} for f, r in self.quarantined],
            "failures": [{"file": f, "reason": r} for f, r in self.failures],
            "check": {
                "passed": self.check_passed,
                "leaks": [leak.__dict__ for leak in self.leaks],
            },
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")


def deidentify_files(
    paths: Iterable[Path],
    out: Path,
    deidentifier: Deidentifier,
    *,
    quarantine: bool = True,
    workers: int = 1,
    advance: Callable[[], None] = lambda: None,
) -> Report:
    """De-identify every file of ``paths`` into ``out`` (named by the new SOP Instance UID),
    in ``workers`` processes (1: in this one)."""
    out.mkdir(parents=True, exist_ok=True)
    report = Report(options=sorted(deidentifier.profile.options))
    written: dict[Path, Path] = {}
    job = functools.partial(
        _deidentify_file, out=out, deidentifier=deidentifier, quarantine=quarantine
    )
    files = list(paths)
    if workers > 1 and len(files) > 1:
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            for path, outcome in zip(files, pool.map(job, files, chunksize=8), strict=True):
                _record(report, written, path, outcome)
                advance()
    else:
        for path in files:
            _record(report, written, path, job(path))
            advance()
    return report


@dataclass
class _Written:
    """What a worker did with one file: its output under a temporary name, counts, leaks."""

    temporary: Path
    target: Path
    counts: Counter[tuple[str, str]]
    leaks: list[Leak]


def _deidentify_file(
    path: Path, *, out: Path, deidentifier: Deidentifier, quarantine: bool
) -> _Written | Refused:
    try:
        done = deidentify_instance(read_source(path), deidentifier, quarantine=quarantine)
    except Refused as refused:
        return refused
    name = done.sop_instance_uid or deidentifier.pseudonyms.uid(str(path))
    target = out / f"{name}.dcm"
    descriptor, temporary_name = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".part")
    os.close(descriptor)
    temporary = Path(temporary_name)
    done.write(temporary)
    for leak in done.leaks:
        leak.output = str(target)
    return _Written(temporary, target, done.result.counts, done.leaks)


def _record(
    report: Report, written: dict[Path, Path], path: Path, outcome: _Written | Refused
) -> None:
    if isinstance(outcome, Quarantined):
        report.quarantined.append((str(path), str(outcome)))
        return
    if isinstance(outcome, Refused):
        report.failures.append((str(path), str(outcome)))
        return
    if outcome.target in written:
        outcome.temporary.unlink()
        report.failures.append((str(path), f"same SOP Instance UID as {written[outcome.target]}"))
        return
    outcome.temporary.replace(outcome.target)
    written[outcome.target] = path
    report.instances += 1
    report.outputs.append((str(path), str(outcome.target)))
    report.attributes.update(outcome.counts)
    report.leaks.extend(outcome.leaks)
