"""Fixtures of the Helm chart tests: real Helm (helm-python-sdk) renders charts/openjip offline.

In the style of the Airflow chart's tests: one `render_chart(values=..., show_only=[...])` helper
returning the rendered Kubernetes objects; helpers over those objects live in chart_objects.py.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
from kubernetes_validate import utils as kubernetes_validate_utils

# The tests import chart_objects (pytest's importlib mode puts no test folder on sys.path).
sys.path.insert(0, str(Path(__file__).parent))

from chart_objects import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    VALUE_SETS,
    find,
    manifests_to_objects,
)

Renderer = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render_chart(chart: helm_python.Chart) -> Renderer:
    """``render_chart(values=None, show_only=None, name=RELEASE, namespace=NAMESPACE)``."""
    cache: dict[str, list[dict[str, Any]]] = {}

    def render(
        values: dict[str, Any] | None = None,
        show_only: list[str] | None = None,
        name: str = RELEASE,
        namespace: str = NAMESPACE,
    ) -> list[dict[str, Any]]:
        key = json.dumps([values or {}, show_only, name, namespace], sort_keys=True)
        if key not in cache:
            manifests = chart.render(values or {}, name=name, namespace=namespace)
            cache[key] = manifests_to_objects(manifests, show_only)
        return copy.deepcopy(cache[key])

    return render


@pytest.fixture(params=sorted(VALUE_SETS), scope="session")
def value_set(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """(name, values) of each named value set."""
    return request.param, VALUE_SETS[request.param]


@pytest.fixture(scope="session", autouse=True)
def cached_kubernetes_schemas() -> Iterator[None]:
    """kubernetes-validate re-reads its large definitions file for every object: read each once."""
    with pytest.MonkeyPatch.context() as patch:
        cached = functools.lru_cache(maxsize=None)(kubernetes_validate_utils.schema_contents)
        patch.setattr(kubernetes_validate_utils, "schema_contents", cached)
        yield


@pytest.fixture(scope="session")
def analysis_pod(
    render_chart: Renderer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The pod of an analysis step built with the settings the chart gives the scheduler
    (built once: importing Airflow's pod operator takes seconds)."""
    from openjip.config import Settings
    from openjip.runner import StepRequest
    from openjip.runner.kubernetes import AnalysisPod

    (scheduler,) = find(render_chart(), "Deployment", "site-openjip-airflow-scheduler")
    request = StepRequest(
        dag_id="ct-body-mask",
        run_id="manual__2026-01-01T00:00:00+00:00",
        step="segment",
        operator="threshold-segmentation@0.1.0",
        series_uids=["1.2.3.4"],
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("analysis-pod"))
        for variable in scheduler["spec"]["template"]["spec"]["containers"][0]["env"]:
            if variable["name"].startswith("OPENJIP_"):
                # Values from Secrets are never part of a pod spec: any text stands in for them.
                patch.setenv(variable["name"], variable.get("value", "from-a-secret-" * 4))
        pod: dict[str, Any] = AnalysisPod(Settings()).manifest(request)
    return pod
