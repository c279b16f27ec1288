"""The site-internal route between the federation service and the site's own web service.

The federation service may not read the index, so it asks the web service, which may: for the
counts of a statistics question and for a screen of documents for patient data. Those routes
(``/internal/v1/...``) take only callers that present the site's loopback secret, a random
token in ``$OPENJIP_HOME/loopback.secret`` (mode 0600) created by whichever side needs it first,
or the file ``OPENJIP_FEDERATION__LOOPBACK_SECRET_FILE`` names (the chart mounts one Secret
into both pods).
Anything that goes wrong on the way is a :class:`LoopbackUnavailable`: the federation side then
refuses (fails closed) instead of answering or letting a document through unscreened.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Any

import httpx

SECRET_FILE = "loopback.secret"
STATISTICS_ROUTE = "/internal/v1/statistics"
SCREEN_ROUTE = "/internal/v1/screen"


class LoopbackUnavailable(Exception):
    """The site's web service could not answer an internal question; the message says why."""


def secret_path(home: Path, configured: Path | None = None) -> Path:
    """Where the loopback secret of the site with this ``OPENJIP_HOME`` lives (``configured``
    when set: in a cluster both pods mount it from one Secret)."""
    return configured if configured is not None else home / SECRET_FILE


def ensure_secret(path: Path) -> str:
    """The loopback secret, created (0600, never replaced) when there is none yet."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()  # the other service created it a moment ago
    token = secrets.token_urlsafe(32)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    return token


def is_authorized(path: Path, authorization: str | None) -> bool:
    """``True`` when ``Authorization: Bearer <token>`` carries this site's loopback secret."""
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), ensure_secret(path).encode()
    )


class LoopbackClient:
    """Calls the internal routes of the site's web service at ``web_url``."""

    def __init__(self, web_url: str, secret: Path, *, timeout: float = 30.0) -> None:
        self.web_url = web_url.rstrip("/")
        self.secret = secret
        self.timeout = timeout

    def post(self, route: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer of ``route``; :class:`LoopbackUnavailable` for anything else."""
        return self.request("POST", route, payload)

    def request(
        self, method: str, route: str, payload: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The JSON object ``method route`` (with ``payload`` as its JSON body) answers;
        :class:`LoopbackUnavailable` for anything else."""
        headers = {"Authorization": f"Bearer {ensure_secret(self.secret)}"}
        try:
            response = httpx.request(
                method,
                f"{self.web_url}{route}",
                json=payload,
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as error:
            raise LoopbackUnavailable(
                f"the site's service at {self.web_url} is unreachable: {error}"
            ) from error
        if response.status_code != 200:
            raise LoopbackUnavailable(
                f"the site's service answered {response.status_code} to {route}: "
                f"{response.text[:200]}"
            )
        try:
            answer = response.json()
        except ValueError as error:
            raise LoopbackUnavailable(f"{route} sent no JSON") from error
        if not isinstance(answer, dict):
            raise LoopbackUnavailable(f"{route} sent no JSON object")
        return answer
