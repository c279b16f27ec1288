"""A training site's side of a federated run: find the coordinator's session, join it or decline
it with the reason, then answer each round's messages with the site's ``ClientApp``.

Every request is signed with the site's key (RFC 9421) and goes to the coordinator's federation
service only. What leaves is checked before it leaves: the reply must hold only the declared
tensors and metrics, must pass the payload guard that refuses DICOM, and is recorded in the
site's audit log (``learning-update-sent``: bytes, tensor shapes, metric names) before it is
sent.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from flwr.app import Message

from openjip.config.learning import LearningSettings
from openjip.federation.audit import AuditLog
from openjip.federation.canonical import canonical_json
from openjip.federation.client import PeerClient
from openjip.federation.errors import BundleRejected, FederationError
from openjip.federation.guard import check_payload
from openjip.learning.client import LocalTraining, client_app, node_context
from openjip.learning.grid import node_id_of
from openjip.learning.limits import JoinRefused, check_cohort, decide_privacy
from openjip.learning.model import Cohort
from openjip.learning.wire import WireRefused, check_reply, decode, encode, metric_names, shapes
from openjip.workflows.spec import FederatedSpec

log = logging.getLogger(__name__)


class ParticipationFailed(Exception):
    """This site did not complete its part; ``reason`` is a short code, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Participation:
    """What this site did in a run (kept in its own ``runs/``)."""

    session_id: str = ""
    privacy: dict[str, float | None] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    """Per message answered: round, type, local metrics and bytes sent."""
    bytes_sent: int = 0


class CoordinatorLink:
    """Signed requests to the coordinator's rounds of one workflow."""

    def __init__(self, client: PeerClient, workflow_id: str) -> None:
        self.client = client
        self.base = f"/v1/learning/{workflow_id}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        raw = canonical_json(body) if body is not None else b""
        status, answer = self.client.request(method, self.base + path, raw)
        try:
            return status, json.loads(answer)
        except ValueError:
            return status, {"detail": answer[:200].decode(errors="replace")}

    def task(self) -> tuple[int, Any]:
        """The session's state and the next message for this site."""
        return self._call("GET", "/task")

    def join(self, session_id: str, decision: str, reason: str = "", message: str = "") -> Any:
        """Join or decline; :class:`FederationError` when the coordinator does not take it."""
        body = {
            "session_id": session_id,
            "decision": decision,
            "reason": reason,
            "message": message,
        }
        status, answer = self._call("POST", "/join", body)
        if status != 200:
            raise FederationError(f"coordinator answered {status}: {answer.get('detail')}")
        return answer

    def reply(self, body: bytes) -> tuple[int, Any]:
        """Post an already checked reply."""
        status, answer = self.client.request("POST", self.base + "/reply", body)
        return status, answer


def _await_session(link: CoordinatorLink, spec: FederatedSpec, poll: float) -> str:
    deadline = time.monotonic() + spec.join_timeout_seconds
    detail = ""
    while time.monotonic() < deadline:
        try:
            status, answer = link.task()
        except FederationError as error:
            status, answer = 0, {"detail": str(error)}
        if status == 200 and answer.get("state") == "joining":
            return str(answer["session_id"])
        detail = f"{status}: {answer.get('detail') or answer.get('state')}"
        time.sleep(poll)
    raise ParticipationFailed(
        "no-session", f"the coordinator opened no session to join in time (last answer {detail})"
    )


@dataclass
class Participant:
    """This site in one run: what it may send and where its decisions are recorded."""

    spec: FederatedSpec
    link: CoordinatorLink
    settings: LearningSettings
    audit: AuditLog
    workflow_id: str
    own_site_id: str
    max_bytes: int
    outcome: Participation = field(default_factory=Participation)

    def run(self, cohort: Cohort) -> Participation:
        """Take part in the coordinator's open session to its end."""
        self.outcome.session_id = _await_session(self.link, self.spec, self.settings.poll_seconds)
        try:
            app = self._join(cohort)
            self._serve(app, node_id_of(self.own_site_id))
        except FederationError as error:
            raise ParticipationFailed("coordinator-unreachable", str(error)) from error
        return self.outcome

    def _join(self, cohort: Cohort) -> Any:
        """Join with the site's own limits (the ClientApp) or decline with the reason."""
        spec, session = self.spec, self.outcome.session_id
        try:
            check_cohort(spec, self.settings, series=cohort.size, patients=cohort.patients)
            privacy = decide_privacy(spec, self.settings)
        except JoinRefused as refusal:
            self.audit.append("learning-declined", workflow_id=self.workflow_id,
                              reason=refusal.reason, message=str(refusal))  # fmt: skip
            self.link.join(session, "decline", refusal.reason, str(refusal))
            raise ParticipationFailed(refusal.reason, str(refusal)) from refusal
        self.outcome.privacy = privacy.describe()
        self.link.join(session, "join")
        log.info("joined session %s with %d series, privacy %s", session, cohort.size,
                 self.outcome.privacy)  # fmt: skip
        self.audit.append("learning-joined", workflow_id=self.workflow_id, session_id=session,
                          series=cohort.size, privacy=self.outcome.privacy)  # fmt: skip
        return client_app(cohort, LocalTraining(spec.local_epochs, spec.learning_rate), privacy)

    def _serve(self, app: Any, node: int) -> None:
        """Answer the session's messages until it finishes (or fails, or falls silent)."""
        idle_since = time.monotonic()
        while True:
            try:
                status, answer = self.link.task()
            except FederationError as error:  # unreachable for now: the patience below decides
                status, answer = 200, {"session_id": self.outcome.session_id,
                                       "state": "running", "detail": str(error)}  # fmt: skip
            if status != 200 or answer.get("session_id") != self.outcome.session_id:
                raise ParticipationFailed(
                    "session-lost", f"the coordinator's session ended: {answer}"
                )
            if answer["state"] == "finished":
                return
            if answer["state"] == "failed":
                raise ParticipationFailed("run-failed", f"the run failed: {answer['message']}")
            task = answer.get("task")
            if task is not None:
                self.outcome.bytes_sent += self.answer(task, app, node)
                idle_since = time.monotonic()
                continue
            # Until the first round the coordinator may still wait for other sites to join.
            patience = 2 * self.spec.round_timeout_seconds + (
                0 if self.outcome.rounds else self.spec.join_timeout_seconds
            )
            if time.monotonic() - idle_since > patience:
                raise ParticipationFailed(
                    "coordinator-silent",
                    f"no round arrived in time ({answer.get('detail') or 'no message'})",
                )
            time.sleep(self.settings.poll_seconds)

    def answer(self, task: dict[str, Any], app: Any, node: int) -> int:
        """Run one message through the ClientApp and send the checked reply; bytes sent."""
        message_type, session = str(task["message_type"]), self.outcome.session_id
        try:
            message = Message(decode(task["content"]), node, message_type,
                              group_id=str(task["round"]))  # fmt: skip
            message.metadata.__dict__["_message_id"] = str(task["message_id"])
            reply = app(message, node_context(node))
            if reply.has_error():
                raise ParticipationFailed(
                    "client-error",
                    f"the ClientApp failed on round {task['round']}: {reply.error.reason}",
                )
            content = encode(reply.content)
            check_reply(content, message_type, shapes(task["content"]))
            body = canonical_json(
                {"session_id": session, "message_id": task["message_id"], "content": content}
            )
            check_payload(body, max_bytes=self.max_bytes)
        except (WireRefused, BundleRejected) as error:
            self.audit.append("learning-update-refused", workflow_id=self.workflow_id,
                              round=task["round"], message=str(error))  # fmt: skip
            raise ParticipationFailed("egress-refused", f"reply not sent: {error}") from error
        metrics = content["records"]["metrics"]["items"]
        self.audit.append(
            "learning-update-sent",
            workflow_id=self.workflow_id,
            session_id=session,
            round=task["round"],
            message_type=message_type,
            bytes=len(body),
            tensors=shapes(content),
            metrics=metric_names(content),
        )
        status, answer = self.link.reply(body)
        if status != 200:
            raise ParticipationFailed(
                "reply-refused", f"coordinator answered {status}: {answer[:200]!r}"
            )
        log.info("round %s %s: sent %d bytes, metrics %s", task["round"], message_type,
                 len(body), metrics)  # fmt: skip
        self.outcome.rounds.append({"round": int(task["round"]), "type": message_type,
                                    "metrics": metrics, "bytes": len(body)})  # fmt: skip
        return len(body)
