"""The credential of one analysis pod: a short-lived token scoped to exactly its step.

In ``kubernetes`` mode an analysis pod holds no store or index credential. The Airflow task that
starts it mints a *step grant* (:func:`mint_grant`): a JWT (HS256 under
``OPENJIP_ACCESS__STEP_TOKEN_SECRET``, audience ``openjip-step``) carrying the step's
:class:`~openjip.runner.StepRequest` — its run, step, input series (or the earlier step whose
outputs it reads) — and an expiry just past the step's timeout. The pod's fetch and publish
phases present it to the web service (:mod:`openjip.web.steps`), which verifies it
(:func:`verify_grant`) and serves exactly those inputs and accepts outputs only under
``runs/<dag>/<run>/<step>/<series>/``. The operator's own container never sees it.

Step grants are a kind of their own: the web service's general ``Bearer`` check accepts only
the identity provider's asymmetric tokens, so a grant opens no other route.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import jwt

from openjip.runner.base import StepRequest

AUDIENCE = "openjip-step"
ISSUER = "openjip-airflow"
ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32


class InvalidGrant(Exception):
    """The token is not a valid, unexpired step grant of this site."""


def request_to_json(request: StepRequest) -> str:
    """The request as the pod's environment and its grant carry it."""
    data = {
        "dag_id": request.dag_id,
        "run_id": request.run_id,
        "step": request.step,
        "operator": request.operator,
        "series_uids": request.series_uids,
        "params": request.params,
        "input_from": request.input_from,
    }
    return json.dumps(data, sort_keys=True)


def request_from_json(text: str) -> StepRequest:
    """The request :func:`request_to_json` wrote."""
    return StepRequest(**json.loads(text))


def _key(secret: str) -> bytes:
    key = secret.encode()
    if len(key) < MIN_SECRET_BYTES:
        raise InvalidGrant(
            f"OPENJIP_ACCESS__STEP_TOKEN_SECRET must be at least {MIN_SECRET_BYTES} bytes"
        )
    return key


def mint_grant(secret: str, request: StepRequest, seconds: float) -> str:
    """A grant for ``request``, valid ``seconds`` from now."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + int(seconds),
        "jti": secrets.token_urlsafe(16),
        "step": request_to_json(request),
    }
    return jwt.encode(claims, _key(secret), algorithm=ALGORITHM)


def verify_grant(secret: str, token: str) -> tuple[str, StepRequest]:
    """``(grant id, request)`` of a valid grant; :class:`InvalidGrant` otherwise."""
    try:
        claims = jwt.decode(
            token,
            _key(secret),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "jti", "aud", "iss"]},
        )
        return str(claims["jti"]), request_from_json(str(claims["step"]))
    except (jwt.PyJWTError, KeyError, TypeError, ValueError) as error:
        raise InvalidGrant(f"step grant refused: {error}") from None
