"""Every file of pydicom's test data and pydicom-data, de-identified with the Basic Profile and
with each option: readable by pydicom and dcmdump, pixel data byte for byte the source's, the
report's check passed, and (Basic Profile) no error dciodvfy did not already report."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pydicom
import pytest

from openjip.deid.profile import OPTIONS
from openjip.deid.run import Report, deidentify_files

from .conftest import deidentifier

NUMBERS = re.compile(r"[0-9][0-9.]*")
# dciodvfy could not read the source: there is nothing to compare with.
UNCHECKED = ("Error - Dicom dataset read failed", "Error - Information Object Not found")
# Errors the standard's table causes, with the reason (docs/deidentification.md lists them).
EXPECTED = {
    # Table E.1-1 (this release) says X for Treatment Machine Name, Type 2 in RT Beams.
    "Error - Missing attribute Type N Required Element=<TreatmentMachineName> Module=<RTBeams>",
}


def run_each(files: list[Path], out: Path, *options: str) -> Report:
    """One run per file (pydicom's test files share SOP Instance UIDs between variants)."""
    total = Report(options=list(options))
    for number, path in enumerate(files):
        report = deidentify_files(
            [path], out / str(number), deidentifier(*options), quarantine=False
        )
        total.outputs += report.outputs
        total.failures += report.failures
        total.leaks += report.leaks
    return total


@pytest.mark.parametrize("options", [(), *[(option,) for option in OPTIONS]], ids=str)
def test_every_file_is_readable_and_keeps_its_pixels(
    test_files: list[Path], tmp_path: Path, options: tuple[str, ...]
) -> None:
    report = run_each(test_files, tmp_path, *options)
    assert not report.failures and not report.leaks, (report.failures, report.leaks)
    assert len(report.outputs) == len(test_files)
    for source, output in report.outputs:
        original, result = pydicom.dcmread(source), pydicom.dcmread(output)
        assert result.get("PixelData") == original.get("PixelData"), source
        assert result.PatientIdentityRemoved == "YES"
    dump = subprocess.run(
        ["/usr/bin/dcmdump", "-q", *(output for _, output in report.outputs)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert dump.returncode == 0, dump.stderr[-2000:]


def dciodvfy_errors(path: str) -> set[str]:
    result = subprocess.run(["/usr/bin/dciodvfy", path], capture_output=True, text=True)
    lines = (result.stdout + result.stderr).splitlines()
    # UIDs are remapped: the same error about a UID names another one after the run.
    return {NUMBERS.sub("N", line) for line in lines if line.startswith("Error")}


def test_dciodvfy_finds_no_new_error(test_files: list[Path], tmp_path: Path) -> None:
    report = run_each(test_files, tmp_path)
    new = {}
    for source, output in report.outputs:
        before = dciodvfy_errors(source)
        if any(line in before for line in UNCHECKED):
            continue
        errors = dciodvfy_errors(output) - before - EXPECTED
        if errors:
            new[Path(source).name] = sorted(errors)
    assert not new, new
