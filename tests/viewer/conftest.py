"""A local site's web service serving the OHIF viewer that `make viewer` installed, the site's
real Airflow, a CT series with a SEG made from it by operators/threshold-segmentation, and a
headless Chromium."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from selenium import webdriver

from openjip.access import UserStore
from openjip.airflow.local import AirflowComponent
from openjip.config import Settings
from openjip.config.settings import AirflowSettings
from openjip.operators import load_operator, run_operator_locally
from openjip.operators.catalog import REPO_OPERATORS_DIR
from openjip.phantom import write_ct_series
from openjip.web import WebService
from openjip.web.viewer import MARKER

# The tests import browser (pytest's importlib mode puts no test folder on sys.path).
sys.path.insert(0, str(Path(__file__).parent))
from browser import start_chromium

VIEWER_PATH = Path(os.environ.get("OPENJIP_TEST_VIEWER_PATH", "~/.openjip/viewer")).expanduser()


@dataclass(frozen=True)
class CtWithSeg:
    """A CT series and the SEG threshold-segmentation made of it, as files."""

    ct: list[Path]
    seg: Path

    @property
    def study(self) -> str:
        return str(pydicom.dcmread(self.ct[0], stop_before_pixels=True).StudyInstanceUID)

    @property
    def seg_series(self) -> str:
        return str(pydicom.dcmread(self.seg, stop_before_pixels=True).SeriesInstanceUID)

    @property
    def seg_instance(self) -> str:
        return str(pydicom.dcmread(self.seg, stop_before_pixels=True).SOPInstanceUID)


@pytest.fixture(scope="session")
def ct_with_seg(tmp_path_factory: pytest.TempPathFactory) -> CtWithSeg:
    """A 40-slice 256² chest CT of ``Doe^Jane`` and its body-mask SEG."""
    root = tmp_path_factory.mktemp("ct-with-seg")
    ct = write_ct_series(
        root / "ct", slices=40, rows=256, columns=256, patient_id="DOE-1", patient_name="Doe^Jane"
    )
    operator = load_operator(REPO_OPERATORS_DIR / "threshold-segmentation")
    result = run_operator_locally(operator, root / "ct", root / "seg", {"target": "body"})
    return CtWithSeg(ct, result.paths()[0])


PASSWORD = "correct horse battery staple"


@pytest.fixture
def doctor(settings: Settings) -> tuple[str, str]:
    """A site admin (the stored test data belong to no project, which only admins see)."""
    UserStore(settings.access_dir).add("doctor", PASSWORD, "admin")
    return "doctor", PASSWORD


@pytest.fixture
def viewer_site(settings: Settings, doctor: tuple[str, str]) -> Iterator[WebService]:
    """The site's web service with the installed viewer (``make viewer``)."""
    if not (VIEWER_PATH / MARKER).is_file():
        pytest.fail(f"no OHIF viewer in {VIEWER_PATH}: run `make viewer` first")
    settings.web.port = 0
    settings.web.viewer_path = VIEWER_PATH
    service = WebService(settings)
    service.start()
    yield service
    service.stop()


@pytest.fixture
def airflow(
    settings: Settings, viewer_site: WebService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AirflowComponent]:
    """The site's Airflow, its plugin linking to ``viewer_site``."""
    monkeypatch.setenv("OPENJIP_WEB__PUBLIC_URL", viewer_site.url)
    monkeypatch.setenv("OPENJIP_HOME", str(settings.home_dir))
    settings.airflow = AirflowSettings(port=0, parallelism=2)
    component = AirflowComponent(settings)
    component.start()
    yield component
    component.stop()


@pytest.fixture
def chromium() -> Iterator[webdriver.Chrome]:
    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture
def stored_ct_with_seg(
    ct_with_seg: CtWithSeg, ingest: Callable[[list[Path]], list[str]]
) -> CtWithSeg:
    ingest([*ct_with_seg.ct, ct_with_seg.seg])
    return ct_with_seg
