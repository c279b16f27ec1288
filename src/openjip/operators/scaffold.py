"""``openjip operator new``: a new operator folder that validates and runs as generated.

The generated operator summarises each input DICOM series as JSON (instances, modality, pixel
statistics) — small enough to read in a minute, real enough to run on any DICOM folder — and
comes with the same Dockerfile shape as the operators in the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

from openjip.operators.manifest import MANIFEST_FILE

_NAME_RE = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")

_MANIFEST = """\
# The operator manifest: see docs/algorithm-developers.md for every field.
name: {name}
version: 0.1.0
description: Summarises each DICOM series as JSON (replace with what {name} does).
image: registry.example.org/{name}:0.1.0
command: [python, main.py]
input:
  kind: dicom-series
output:
  kind: json
params:
  pixel_statistics:
    type: boolean
    title: Pixel statistics
    description: Also compute minimum, maximum and mean of the stored pixel values.
    default: true
  min_instances:
    type: integer
    title: Minimum instances
    description: Fail when a series has fewer instances than this.
    default: 1
    minimum: 1
resources:
  cpu: "1"
  memory: 512Mi
  gpu: 0
"""

_MAIN = '''\
"""{name}: summarises each input DICOM series as summary.json (replace with your analysis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from openjip import sdk


def summarise(files: list[Path], pixel_statistics: bool) -> dict[str, Any]:
    """What the DICOM files of one series hold."""
    datasets = []
    for path in files:
        try:
            datasets.append(pydicom.dcmread(path))
        except InvalidDicomError:
            sdk.log.warning("skipping %s: not DICOM", path.name)
    summary: dict[str, Any] = {{
        "instances": len(datasets),
        "series": sorted({{str(ds.get("SeriesInstanceUID", "")) for ds in datasets}}),
        "modalities": sorted({{str(ds.get("Modality", "")) for ds in datasets}}),
    }}
    if pixel_statistics:
        pixels = [ds.pixel_array for ds in datasets if "PixelData" in ds]
        if pixels:
            summary["pixel_min"] = float(min(p.min() for p in pixels))
            summary["pixel_max"] = float(max(p.max() for p in pixels))
            summary["pixel_mean"] = float(sum(p.mean() for p in pixels) / len(pixels))
    return summary


def main() -> None:
    """Summarise every input series."""
    params = sdk.params()
    inputs = sdk.inputs()
    for position, series in enumerate(inputs):
        summary = summarise(series.files(), params["pixel_statistics"])
        if summary["instances"] < params["min_instances"]:
            sdk.fail(f"{{series.name}}: {{summary['instances']}} instance(s), "
                     f"fewer than min_instances={{params['min_instances']}}")
        out = series.output_dir() / "summary.json"
        out.write_text(json.dumps(summary, indent=2))
        sdk.log.info("wrote %s", out)
        sdk.progress((position + 1) / len(inputs), f"{{series.name}} done")


if __name__ == "__main__":
    sdk.run(main)
'''

_REQUIREMENTS = """\
# Pinned dependencies of the operator image.
pydicom==3.0.2
numpy==2.4.6
"""

DOCKERFILE = """\
# syntax=docker/dockerfile:1.7
# Build with BuildKit; the named context `sdk` is openjip's src/openjip/sdk folder:
#   docker build --build-context sdk=PATH/TO/openjip/src/openjip/sdk \\
#       -t {image} operators/{name}
# Pin the base image by digest (python:…@sha256:…) before publishing to other sites.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${{PYTHON_IMAGE}} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r /tmp/requirements.txt
# openjip.sdk is stdlib only: copied in, not installed with openjip's service dependencies.
COPY --from=sdk . /opt/venv/lib/python3.11/site-packages/openjip/sdk/

FROM ${{PYTHON_IMAGE}}{runtime}
RUN groupadd --gid 10001 openjip \\
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin openjip
COPY --from=build /opt/venv /opt/venv
WORKDIR /opt/operator
COPY main.py ./
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
CMD {command}
"""


def dockerfile(
    name: str, image: str, command: list[str], apt_packages: tuple[str, ...] = ()
) -> str:
    """The Dockerfile of an operator: multi-stage, pinned base, non-root, openjip.sdk copied in."""
    runtime = ""
    if apt_packages:
        runtime = (
            "\nRUN apt-get update && apt-get install -y --no-install-recommends "
            + " ".join(apt_packages)
            + " && rm -rf /var/lib/apt/lists/*"
        )
    command_json = "[" + ", ".join(f'"{part}"' for part in command) + "]"
    return DOCKERFILE.format(name=name, image=image, runtime=runtime, command=command_json)


def new_operator(name: str, parent: Path) -> Path:
    """Create ``parent/name/`` with manifest, code, requirements and Dockerfile; return it.

    Raises :class:`ValueError` for a name that is not a DNS label and :class:`FileExistsError`
    when the folder exists.
    """
    if not _NAME_RE.match(name):
        raise ValueError(
            f"{name!r} is not a valid operator name: lower-case letters, digits and dashes, "
            "starting with a letter (at most 63 characters)"
        )
    folder = parent / name
    folder.mkdir(parents=True, exist_ok=False)
    (folder / MANIFEST_FILE).write_text(_MANIFEST.format(name=name), encoding="utf-8")
    (folder / "main.py").write_text(_MAIN.format(name=name), encoding="utf-8")
    (folder / "requirements.txt").write_text(_REQUIREMENTS, encoding="utf-8")
    image = f"registry.example.org/{name}:0.1.0"
    (folder / "Dockerfile").write_text(
        dockerfile(name, image, ["python", "main.py"]), encoding="utf-8"
    )
    return folder
