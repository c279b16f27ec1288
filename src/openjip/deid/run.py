"""A de-identification run over files: write each instance de-identified, quarantine burned-in
text, and prove the output: no identifying value of a source header may occur anywhere in the
bytes of its output file (private tags, nested sequences and all), else the run fails.

Instances are independent: a run handles several at once on threads, so reading and writing
(which wait on the disk) overlap the walk; two sources that would give the same output file
are caught before the second is written.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
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
    ``workers`` at a time (threads: one reads or writes while another walks)."""
    out.mkdir(parents=True, exist_ok=True)
    report = Report(options=sorted(deidentifier.profile.options))
    files = list(paths)
    claims = _Claims()

    def one(path: Path) -> _Written | Refused:
        return _deidentify_file(path, out, deidentifier, quarantine, claims)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for path, outcome in zip(files, pool.map(one, files), strict=True):
            _record(report, path, outcome)
            advance()
    return report


@dataclass
class _Claims:
    """Output files claimed so far, by source: two sources of one output are caught before the
    second is written over the first."""

    sources: dict[Path, Path] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, target: Path, source: Path) -> None:
        with self.lock:
            if target in self.sources:
                raise Refused(f"same SOP Instance UID as {self.sources[target]}")
            self.sources[target] = source


@dataclass
class _Written:
    """What became of one file: its output, counts, leaks."""

    target: Path
    counts: Counter[tuple[str, str]]
    leaks: list[Leak]


def _deidentify_file(
    path: Path, out: Path, deidentifier: Deidentifier, quarantine: bool, claims: _Claims
) -> _Written | Refused:
    try:
        done = deidentify_instance(read_source(path), deidentifier, quarantine=quarantine)
        name = done.sop_instance_uid or deidentifier.pseudonyms.uid(str(path))
        target = out / f"{name}.dcm"
        claims.claim(target, path)
    except Refused as refused:
        return refused
    done.write(target)
    for leak in done.leaks:
        leak.output = str(target)
    return _Written(target, done.result.counts, done.leaks)


def _record(report: Report, path: Path, outcome: _Written | Refused) -> None:
    if isinstance(outcome, Quarantined):
        report.quarantined.append((str(path), str(outcome)))
    elif isinstance(outcome, Refused):
        report.failures.append((str(path), str(outcome)))
    else:
        report.instances += 1
        report.outputs.append((str(path), str(outcome.target)))
        report.attributes.update(outcome.counts)
        report.leaks.extend(outcome.leaks)
