"""/metrics speaks the Prometheus text format and counts the web service's own requests."""

from __future__ import annotations

import re

import httpx
from prometheus_client.parser import text_string_to_metric_families


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_by_route_and_status(http: httpx.Client) -> None:
    before = _samples(http.get("/metrics").text)
    for _ in range(3):
        assert http.get("/healthz").status_code == 200
    assert http.get("/no/such/page").status_code == 404
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = _samples(response.text)

    ok = (
        "openjip_web_requests_total",
        (("method", "GET"), ("route", "/healthz"), ("status", "200")),
    )
    missing = (
        "openjip_web_requests_total",
        (("method", "GET"), ("route", "<unmatched>"), ("status", "404")),
    )
    assert after[ok] - before.get(ok, 0) == 3
    assert after[missing] - before.get(missing, 0) == 1
    count = (
        "openjip_web_request_duration_seconds_count",
        (("method", "GET"), ("route", "/healthz")),
    )
    assert after[count] - before.get(count, 0) == 3
    assert re.search(
        r'^openjip_web_request_duration_seconds_bucket\{le="0\.005"', response.text, re.M
    )
