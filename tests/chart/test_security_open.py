"""Refuse to be open, as a values-schema check: the chart's services listen on the pod network,
so values that would serve anonymous callers, let unknown AEs read patient data, or put a
browser surface on an Ingress without TLS fail at install, naming the value."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest
from chart_objects import VALUE_SETS, merge

INSECURE = [
    ({"access": {"allowAnonymous": True}}, "/access/allowAnonymous"),
    ({"receiver": {"unknownAEAllow": ["echo", "store", "find"]}}, "/receiver/unknownAEAllow/2"),
    ({"receiver": {"unknownAEAllow": ["get"]}}, "/receiver/unknownAEAllow/0"),
    (
        {"ingress": {"enabled": True, "web": {"host": "images.example"}}},
        "/ingress/web",
    ),
    (
        {
            "ingress": {
                "enabled": True,
                "web": {"host": "images.example", "tlsSecretName": "t"},
                "airflow": {"host": "workflows.example", "tlsSecretName": ""},
            }
        },
        "/ingress/airflow/tlsSecretName",
    ),
    ({"keycloak": {"enabled": True}}, "/access/oidc"),
    (
        {"receiver": {"knownAEs": {"PACS": {"allow": ["find", "delete"]}}}},
        "/receiver/knownAEs/PACS/allow/1",
    ),
]


@pytest.mark.parametrize(("values", "pointer"), INSECURE, ids=[p for _, p in INSECURE])
def test_insecure_values_are_refused(
    chart: helm_python.Chart, values: dict[str, Any], pointer: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError) as error:
        chart.render(values, name="site", namespace="openjip")
    assert pointer in str(error.value), str(error.value)


def test_the_secure_counterparts_render(render_chart: Any) -> None:
    known = {"receiver": {"knownAEs": {"PACS": {"allow": ["find", "get"], "projects": ["p1"]}}}}
    assert render_chart(merge(VALUE_SETS["default"], known))
    assert render_chart(VALUE_SETS["single-sign-on"])
