"""dicom-to-nifti: each input series to NIfTI + BIDS JSON sidecar with dcm2niix.

dcm2niix is found on PATH (override with ``DCM2NIIX``); its own output goes to the step log and
its last error line becomes the step's failure message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from openjip import sdk


def dcm2niix_binary() -> str:
    """Path of the dcm2niix executable."""
    binary = os.environ.get("DCM2NIIX") or shutil.which("dcm2niix")
    if not binary:
        sdk.fail("dcm2niix not found on PATH (install the Debian package dcm2niix)")
    return binary


def convert(binary: str, source: Path, out: Path, params: dict[str, object]) -> list[Path]:
    """Run dcm2niix on ``source``; return the NIfTI files it wrote into ``out``."""
    yes_no = {True: "y", False: "n"}
    command = [
        binary,
        "-z", yes_no[bool(params["compress"])],
        "-b", "y",
        "-ba", yes_no[bool(params["anonymize_sidecar"])],
        "-f", str(params["filename"]),
        "-o", str(out),
        str(source),
    ]  # fmt: skip
    before = set(out.iterdir())
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    errors = []
    for line in (done.stdout + done.stderr).splitlines():
        if line.strip():
            sdk.log.info("dcm2niix: %s", line)
        if line.startswith("Error"):
            errors.append(line)
    if done.returncode != 0:
        reason = errors[-1] if errors else f"exit code {done.returncode}"
        sdk.fail(f"dcm2niix failed on {source.name}: {reason}")
    written = sorted(p for p in set(out.iterdir()) - before if p.name.endswith((".nii", ".nii.gz")))
    if not written:
        sdk.fail(f"dcm2niix found no convertible DICOM series in {source.name}")
    return written


def main() -> None:
    """Convert every input series."""
    params = sdk.params()
    binary = dcm2niix_binary()
    inputs = sdk.inputs()
    for position, item in enumerate(inputs):
        sdk.progress(position / len(inputs), f"converting {item.name}")
        for path in convert(binary, item.path, item.output_dir(), params):
            sdk.log.info("wrote %s", path.name)
    sdk.progress(1.0, f"converted {len(inputs)} input(s)")


if __name__ == "__main__":
    sdk.run(main)
