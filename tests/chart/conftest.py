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

from chart_objects import CHART_DIR, NAMESPACE, RELEASE, VALUE_SETS, manifests_to_objects

Renderer = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render_chart(chart: helm_python.Chart) -> Renderer:
    """``render_chart(values=None, show_only=None, name=RELEASE, namespace=NAMESPACE)``."""
    cache: dict[str, dict[str, str]] = {}

    def render(
        values: dict[str, Any] | None = None,
        show_only: list[str] | None = None,
        name: str = RELEASE,
        namespace: str = NAMESPACE,
    ) -> list[dict[str, Any]]:
        key = json.dumps([values or {}, name, namespace], sort_keys=True)
        if key not in cache:
            cache[key] = chart.render(values or {}, name=name, namespace=namespace)
        return copy.deepcopy(manifests_to_objects(cache[key], show_only))

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
