"""Fixtures of the Airflow tests: a migrated Airflow metadata database once per session (the
running local Airflow stack, ``local_site``, is in tests/conftest.py: tests/site uses it too)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """``airflow db migrate`` in the session's AIRFLOW_HOME (set by tests/conftest.py)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, timeout=300)
    return home


@pytest.fixture
def dagbag(airflow_db: Path, openjip_home: Path) -> DagBag:
    """The DAGs of the project's dags/ folder, parsed without import errors."""
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"))
    assert bag.import_errors == {}
    return bag
