"""Fixtures of the Airflow tests: a migrated Airflow metadata database and a running local
Airflow stack, each once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from openjip.airflow.client import AirflowClient
from openjip.airflow.local import AirflowComponent
from openjip.config import Settings
from openjip.config.settings import AirflowSettings, ReceiverSettings


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """``airflow db migrate`` in the session's AIRFLOW_HOME (set by tests/conftest.py)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, timeout=300)
    return home


@dataclass
class LocalSite:
    """A running local Airflow (api-server, scheduler, dag-processor) and its site settings."""

    settings: Settings
    airflow: AirflowComponent

    def client(self) -> AirflowClient:
        return self.airflow.client()


@pytest.fixture(scope="session")
def local_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSite]:
    """The real Airflow stack of a local site, started once per session (it takes a minute)."""
    home = tmp_path_factory.mktemp("site")
    settings = Settings(
        home=home,
        airflow=AirflowSettings(port=0, parallelism=2, trigger_retry_seconds=0.5),
        receiver=ReceiverSettings(
            port=0, workers=1, series_idle_seconds=2.0, sweep_interval_seconds=0.25
        ),
    )
    airflow = AirflowComponent(settings)
    airflow.start()
    try:
        yield LocalSite(settings, airflow)
    finally:
        airflow.stop()


@pytest.fixture
def site_settings(local_site: LocalSite, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The running site's settings; OPENJIP_HOME points at it for code that reads the env."""
    monkeypatch.setenv("OPENJIP_HOME", str(local_site.settings.home_dir))
    return local_site.settings
