"""Fixtures of the podman tests: the service images built from the offline Debian base
(``make podman-images``: debootstrap once, podman's layer cache after that) and a podman that
runs pods as these tests need it on this machine (runc, nofile and nproc limits it may set)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "site"))  # chart_processes (importlib mode)
sys.path.insert(0, str(Path(__file__).parent))  # podman_engine, site_pod

from podman_engine import CONTAINERS_CONF, Podman

REPO = Path(__file__).resolve().parents[2]
# The images of this checkout are tagged after its path: two checkouts tested on one machine at
# the same time (a fresh clone under CI beside a working tree) never run each other's images.
IMAGE_TAG = "test-" + hashlib.sha256(str(REPO).encode()).hexdigest()[:12]


@pytest.fixture(scope="session")
def image_values() -> dict[str, Any]:
    """The chart's two images (ghcr.io/openjip/openjip and .../airflow) built from this checkout;
    the chart values that name them."""
    subprocess.run(
        ["make", "-s", "podman-images", f"IMAGE_TAG={IMAGE_TAG}"],
        cwd=REPO,
        check=True,
        timeout=3000,
    )
    return {"images": {"openjip": {"tag": IMAGE_TAG}, "airflow": {"tag": IMAGE_TAG}}}


@pytest.fixture
def podman(tmp_path: Path, image_values: dict[str, Any]) -> Iterator[Podman]:
    conf = tmp_path / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    engine = Podman(conf, [], [])
    yield engine
    engine.cleanup()
