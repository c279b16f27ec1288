"""Internal routes the site's own federation service calls (never peers, never browsers):
``POST /internal/v1/statistics`` answers a statistics question from the index with small-cell
suppression. Callers must present the site's loopback secret
(:mod:`openjip.statistics.loopback`); others get 401.
"""

from __future__ import annotations

from fastapi import APIRouter, Header, HTTPException, Request

from openjip.config import Settings
from openjip.index import InvalidQuery
from openjip.statistics.counts import count_series
from openjip.statistics.loopback import STATISTICS_ROUTE, is_authorized, secret_path
from openjip.statistics.question import Answer, Question
from openjip.web.backends import Backends

router = APIRouter(tags=["internal"], include_in_schema=False)


def require_loopback_secret(request: Request, authorization: str | None) -> Settings:
    """The app's settings once the caller proved it holds the site's loopback secret."""
    settings: Settings = request.app.state.settings
    if not is_authorized(secret_path(settings.home_dir), authorization):
        raise HTTPException(401, "internal route: the site's loopback secret is required")
    return settings


@router.post(STATISTICS_ROUTE)
def statistics(
    question: Question, request: Request, authorization: str | None = Header(None)
) -> Answer:
    """Counts for ``question``, cells below the site's (or the asker's higher) minimum withheld."""
    settings = require_loopback_secret(request, authorization)
    backends: Backends = request.app.state.backends
    try:
        return count_series(
            backends.index, question, site_min_cell=settings.federation.question_min_cell
        )
    except InvalidQuery as error:
        raise HTTPException(400, str(error)) from error
