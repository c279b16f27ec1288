"""Internal routes the site's own federation service calls (never peers, never browsers):
``POST /internal/v1/statistics`` answers a statistics question from the index with small-cell
suppression; ``POST /internal/v1/screen`` says where a document carries patient data of this
site's index (or date / ID patterns). Callers must present the site's loopback secret
(:mod:`openjip.statistics.loopback`); others get 401.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, HTTPException, Request

from openjip.config import Settings
from openjip.index import InvalidQuery
from openjip.statistics.counts import count_series
from openjip.statistics.loopback import (
    SCREEN_ROUTE,
    STATISTICS_ROUTE,
    is_authorized,
    secret_path,
)
from openjip.statistics.question import Answer, Question
from openjip.statistics.screen import Finding, ScreenRequest, indexed_patients, screen_strings
from openjip.web.backends import Backends


def require_loopback_secret(request: Request, authorization: str | None = Header(None)) -> None:
    """401 unless the caller proved it holds the site's loopback secret (checked before the
    body is even validated)."""
    settings: Settings = request.app.state.settings
    secret = secret_path(settings.home_dir, settings.federation.loopback_secret_file)
    if not is_authorized(secret, authorization):
        raise HTTPException(401, "internal route: the site's loopback secret is required")


router = APIRouter(
    tags=["internal"], include_in_schema=False, dependencies=[Depends(require_loopback_secret)]
)


@router.post(STATISTICS_ROUTE)
def statistics(question: Question, request: Request) -> Answer:
    """Counts for ``question``, cells below the site's (or the asker's higher) minimum withheld."""
    settings: Settings = request.app.state.settings
    backends: Backends = request.app.state.backends
    try:
        return count_series(
            backends.index, question, site_min_cell=settings.federation.question_min_cell
        )
    except InvalidQuery as error:
        raise HTTPException(400, str(error)) from error


@router.post(SCREEN_ROUTE)
def screen(document: ScreenRequest, request: Request) -> dict[str, list[Finding]]:
    """The findings of patient data in the document's strings (empty: none found)."""
    backends: Backends = request.app.state.backends
    return {"findings": screen_strings(document.strings, indexed_patients(backends.index))}
