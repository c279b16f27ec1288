"""The coordinator's side of federated-learning rounds at its federation service.

The coordinator's aggregation task (an Airflow task at this site) opens a session for a
workflow, pushes each round's Flower messages and reads the replies over the site-internal
routes (``/internal/v1/learning/...``, the site's loopback secret); peers, with signed requests,
join or decline the session, fetch the messages addressed to them and post their replies
(``/v1/learning/...``); each message handed to a peer is recorded as this site's egress
(``learning-task-sent``). The service only holds and hands on these JSON documents: it never
trains, reads the index or sees images. A reply is taken only for a message sent to that peer
and not yet answered; every join, refusal and received update is in the audit log (bytes,
tensor shapes, metric names). Sessions live in memory: a restart of the service ends them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from openjip.federation.audit import AuditLog
from openjip.federation.canonical import canonical_json

PEER_ROUTE = "/v1/learning/{workflow_id}"
INTERNAL_ROUTE = "/internal/v1/learning/{workflow_id}"
OPEN_STATES = ("joining", "running")


@dataclass
class Session:
    """One federated run as the coordinator's federation service holds it."""

    workflow_id: str
    session_id: str
    state: str = "joining"
    message: str = ""
    joined: dict[str, dict[str, Any]] = field(default_factory=dict)
    declined: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What a peer may know of the session."""
        return {"session_id": self.session_id, "state": self.state, "message": self.message}


def _shapes(content: Any) -> dict[str, Any]:
    records = content.get("records", {}) if isinstance(content, dict) else {}
    return {
        key: item.get("shape")
        for record in records.values()
        if isinstance(record, dict) and record.get("kind") == "arrays"
        for key, item in record.get("items", {}).items()
    }


def _metrics(content: Any) -> list[str]:
    records = content.get("records", {}) if isinstance(content, dict) else {}
    return sorted(
        key
        for record in records.values()
        if isinstance(record, dict) and record.get("kind") == "metrics"
        for key in record.get("items", {})
    )


class RoundDesk:
    """The sessions of this site's federation service, by workflow id."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    # The coordinator's own aggregation task ------------------------------------------------

    def open(self, workflow_id: str, session_id: str) -> Session:
        """Start a session, ending any earlier one of the workflow."""
        with self._lock:
            session = self._sessions[workflow_id] = Session(workflow_id, session_id)
        self.audit.append("learning-open", workflow_id=workflow_id, session_id=session_id)
        return session

    def state(self, workflow_id: str) -> dict[str, Any] | None:
        """Everything of the workflow's session (for the aggregation task)."""
        with self._lock:
            session = self._sessions.get(workflow_id)
            return json.loads(json.dumps(session.__dict__)) if session else None

    def push(self, workflow_id: str, messages: list[dict[str, Any]]) -> int:
        """Queue messages for peers; each names ``message_id``, ``site_id``, ``message_type``,
        ``round`` and ``content``."""
        with self._lock:
            session = self._sessions[workflow_id]
            session.state = "running"
            for message in messages:
                session.messages[str(message["message_id"])] = message
        return len(messages)

    def close(self, workflow_id: str, state: str, message: str) -> None:
        """End the session as ``finished`` or ``failed``."""
        with self._lock:
            session = self._sessions[workflow_id]
            session.state, session.message = state, message
        self.audit.append("learning-close", workflow_id=workflow_id, state=state, message=message)

    # Peers -----------------------------------------------------------------------------------

    def _session(self, workflow_id: str, session_id: str | None = None) -> Session | None:
        session = self._sessions.get(workflow_id)
        if session is None or (session_id is not None and session.session_id != session_id):
            return None
        return session

    def join(
        self, workflow_id: str, site_id: str, peer: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """A peer joins the session or declines it (with its reason)."""
        with self._lock:
            session = self._session(workflow_id, str(body.get("session_id", "")))
            if session is None:
                return 404, {"detail": f"no session {body.get('session_id')!r} of {workflow_id}"}
            if session.state != "joining":
                return 409, {"detail": f"session is {session.state}; joining has ended"}
            if body.get("decision") == "join":
                session.joined[site_id] = {"peer": peer}
            else:
                session.declined[site_id] = {
                    "peer": peer,
                    "reason": str(body.get("reason", "")),
                    "message": str(body.get("message", ""))[:500],
                }
        event = "learning-joined" if body.get("decision") == "join" else "learning-declined"
        self.audit.append(
            event,
            peer=peer,
            workflow_id=workflow_id,
            session_id=session.session_id,
            reason=str(body.get("reason", "")),
            message=str(body.get("message", ""))[:500],
        )
        return 200, session.summary()

    def task(self, workflow_id: str, site_id: str, peer: str) -> tuple[int, bytes]:
        """The session's state and the oldest unanswered message for this peer (each message
        handed out is an egress of this site: audited with its size, tensors and metrics)."""
        with self._lock:
            session = self._session(workflow_id)
            if session is None:
                return 404, canonical_json({"detail": f"no session of {workflow_id} here"})
            waiting = [
                message
                for message_id, message in session.messages.items()
                if message["site_id"] == site_id and message_id not in session.replies
            ]
            body = canonical_json({**session.summary(), "task": waiting[0] if waiting else None})
        if waiting:
            self._audit("learning-task-sent", peer, session, waiting[0], len(body),
                        waiting[0]["content"])  # fmt: skip
        return 200, body

    def reply(
        self, workflow_id: str, site_id: str, peer: str, body: dict[str, Any], size: int
    ) -> tuple[int, dict[str, Any]]:
        """Take a peer's reply to a message sent to it."""
        message_id = str(body.get("message_id", ""))
        with self._lock:
            session = self._session(workflow_id, str(body.get("session_id", "")))
            message = session.messages.get(message_id) if session else None
            if session is None or message is None or message["site_id"] != site_id:
                return 404, {"detail": f"no message {message_id!r} for you in this session"}
            if message_id in session.replies:
                return 409, {"detail": f"message {message_id!r} was answered already"}
            content = body.get("content")
            session.replies[message_id] = {"site_id": site_id, "content": content, "bytes": size}
        self._audit("learning-update-received", peer, session, message, size, content)
        return 200, {"message_id": message_id, "state": "received"}

    def _audit(
        self,
        event: str,
        peer: str,
        session: Session,
        message: dict[str, Any],
        size: int,
        content: Any,
    ) -> None:
        """One message that left or reached this site: its size, tensor shapes and metrics."""
        self.audit.append(
            event,
            peer=peer,
            workflow_id=session.workflow_id,
            session_id=session.session_id,
            round=message["round"],
            message_type=message["message_type"],
            bytes=size,
            tensors=_shapes(content),
            metrics=_metrics(content),
        )


def add_routes(app: FastAPI, desk: RoundDesk) -> None:
    """The peer and site-internal routes of the rounds (the gate authenticates both kinds)."""

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            value = json.loads(await request.body() or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @app.get(PEER_ROUTE + "/task")
    def task(workflow_id: str, request: Request) -> Response:
        peer = request.state.peer
        status, body = desk.task(workflow_id, peer.site_id, peer.name)
        return Response(body, status_code=status, media_type="application/json")

    @app.post(PEER_ROUTE + "/join")
    async def join(workflow_id: str, request: Request) -> JSONResponse:
        peer = request.state.peer
        status, answer = desk.join(workflow_id, peer.site_id, peer.name, await body_of(request))
        return JSONResponse(answer, status_code=status)

    @app.post(PEER_ROUTE + "/reply")
    async def reply(workflow_id: str, request: Request) -> JSONResponse:
        peer = request.state.peer
        raw = await request.body()
        status, answer = desk.reply(
            workflow_id, peer.site_id, peer.name, await body_of(request), len(raw)
        )
        return JSONResponse(answer, status_code=status)

    @app.post(INTERNAL_ROUTE + "/open")
    async def open_session(workflow_id: str, request: Request) -> JSONResponse:
        body = await body_of(request)
        return JSONResponse(desk.open(workflow_id, str(body.get("session_id", ""))).summary())

    @app.get(INTERNAL_ROUTE)
    def session_state(workflow_id: str) -> JSONResponse:
        state = desk.state(workflow_id)
        if state is None:
            return JSONResponse({"detail": f"no session of {workflow_id}"}, status_code=404)
        return JSONResponse(state)

    @app.post(INTERNAL_ROUTE + "/push")
    async def push(workflow_id: str, request: Request) -> JSONResponse:
        body = await body_of(request)
        if desk.state(workflow_id) is None:
            return JSONResponse({"detail": f"no session of {workflow_id}"}, status_code=404)
        return JSONResponse({"queued": desk.push(workflow_id, list(body.get("messages", [])))})

    @app.post(INTERNAL_ROUTE + "/close")
    async def close(workflow_id: str, request: Request) -> JSONResponse:
        body = await body_of(request)
        if desk.state(workflow_id) is None:
            return JSONResponse({"detail": f"no session of {workflow_id}"}, status_code=404)
        desk.close(workflow_id, str(body.get("state", "failed")), str(body.get("message", "")))
        return JSONResponse({"state": body.get("state")})
