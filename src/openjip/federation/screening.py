"""Screening every document that crosses the site's border for patient data.

The federation service cannot look into the index, so it sends the strings of a document (a
workflow spec, a statistics question or answer) to the site's own web service
(``/internal/v1/screen`` over loopback), which checks them against the values in the index and
against date and ID patterns. A finding refuses the document with reason ``patient-data``;
when the screen cannot run, the document is refused too (``screen-unavailable``): the border
fails closed.
"""

from __future__ import annotations

from typing import Any

from openjip.federation.errors import BundleRejected
from openjip.federation.guard import strings_of
from openjip.statistics.loopback import SCREEN_ROUTE, LoopbackClient, LoopbackUnavailable


def screen_document(loopback: LoopbackClient, document: Any, *, what: str) -> None:
    """Raise :class:`BundleRejected` when ``document`` (described as ``what``) carries patient
    data, or when that cannot be checked now."""
    try:
        answer = loopback.post(SCREEN_ROUTE, {"strings": list(strings_of(document, ""))})
    except LoopbackUnavailable as error:
        raise BundleRejected(
            "screen-unavailable",
            f"{what} refused: it cannot be screened for patient data ({error})",
        ) from error
    findings = answer.get("findings")
    if not isinstance(findings, list):
        raise BundleRejected(
            "screen-unavailable", f"{what} refused: the screen gave no findings list"
        )
    if findings:
        where = "; ".join(f"{item.get('path') or '/'}: {item.get('kind')}" for item in findings)
        raise BundleRejected("patient-data", f"{what} refused: it carries patient data ({where})")
