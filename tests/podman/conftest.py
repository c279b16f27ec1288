"""Fixtures of the podman tests: the service images built from the offline Debian base
(``make podman-images``: debootstrap once, podman's layer cache after that) and a podman that
runs pods as these tests need it on this machine (runc, nofile and nproc limits it may set)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "site"))  # chart_processes (importlib mode)
sys.path.insert(0, str(Path(__file__).parent))  # podman_engine, site_pod

from podman_engine import CONTAINERS_CONF, Podman

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def service_images() -> None:
    """The chart's two images (ghcr.io/openjip/openjip and .../airflow at the chart's tag)."""
    subprocess.run(["make", "-s", "podman-images"], cwd=REPO, check=True, timeout=3000)


@pytest.fixture
def podman(tmp_path: Path, service_images: None) -> Iterator[Podman]:
    conf = tmp_path / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    engine = Podman(conf, [], [])
    yield engine
    engine.cleanup()
