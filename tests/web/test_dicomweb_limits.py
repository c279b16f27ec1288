"""QIDO-RS paging bounds and UID checks of the DICOMweb routes: every bad value a 400 with a
message, never a 500 (a 23-digit limit overflowed SQLite's 64-bit bind; a UID with a trailing
newline passed the UID pattern)."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from openjip.dicom import InvalidUID, check_uid, is_valid_uid
from openjip.web.dicomweb.attributes import MAX_LIMIT, MAX_OFFSET


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "99999999999999999999999"},
        {"offset": "99999999999999999999999"},
        {"limit": str(MAX_LIMIT + 1)},
        {"offset": str(MAX_OFFSET + 1)},
        {"limit": "²"},  # str.isdigit() says yes, int() says no
        {"limit": "1" * 5000},  # beyond int()'s digit limit
        {"limit": " 5"},
    ],
)
@pytest.mark.parametrize("level", ["studies", "series", "instances"])
def test_qido_paging_out_of_bounds_is_a_400(
    http: httpx.Client, level: str, params: dict[str, str]
) -> None:
    response = http.get(f"/dicom-web/{level}", params=params)
    assert response.status_code == 400, response.text
    assert "whole number from 0 to" in response.json()["detail"]


def test_qido_paging_at_the_bounds_is_served(http: httpx.Client) -> None:
    response = http.get("/dicom-web/instances", params={"limit": MAX_LIMIT, "offset": MAX_OFFSET})
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize("uid", ["1.2.3\n", "1.2.3\r\n", "\n1.2.3", "1.2.3 ", "\u0661.\u0662"])
def test_a_uid_with_a_trailing_newline_or_foreign_digits_is_refused(
    http: httpx.Client, uid: str
) -> None:
    assert not is_valid_uid(uid)
    response = http.get(f"/dicom-web/studies/{quote(uid)}/series")
    assert response.status_code == 400, response.text
    assert "not a valid UID" in response.json()["detail"]


def test_check_uid_refuses_a_newline_inside_after_stripping() -> None:
    assert check_uid("1.2.3 \0", "SeriesInstanceUID") == "1.2.3"
    for bad in ("1.2.3\n", "1.2.3\n4", "\t1.2.3"):
        with pytest.raises(InvalidUID):
            check_uid(bad, "SeriesInstanceUID")
    assert not is_valid_uid("1.2.3\n")
