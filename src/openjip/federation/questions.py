"""Federated statistics at the federation service: the questions this site asks its peers, and
the questions peers ask this site.

Answering: a peer's question is validated, then handled by that peer's ``questions`` policy —
``refuse`` (403), ``manual`` (held until a person approves or rejects it; 202 until then) or
``auto`` (answered at once). The counts come from this site's own web service over loopback
(:mod:`openjip.statistics.loopback`), because this package never reads the index; when it
cannot answer, the question is not answered (503), never answered from elsewhere. State:
``questions/<question id>.json``. A question's id is a hash of the asking site and the
question, so asking again returns its current state (e.g. the answer a person approved since).

Asking: the question is sent, signed, to each peer; the answers are combined per cell.
Every question and answer is written to the audit log on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from openjip.federation.audit import AuditLog
from openjip.federation.canonical import canonical_json, digest
from openjip.federation.client import PeerClient
from openjip.federation.errors import BundleRejected, FederationError
from openjip.federation.files import read_json, write_json
from openjip.federation.peers import Peer
from openjip.federation.screening import screen_document
from openjip.statistics.loopback import STATISTICS_ROUTE, LoopbackClient, LoopbackUnavailable
from openjip.statistics.question import Answer, Question

QUESTIONS_ROUTE = "/v1/questions"
_STATUS_CODES = {"answered": 200, "pending": 202, "refused": 403}


def question_id(asker_site_id: str, question: Question) -> str:
    """Stable id of one site's question."""
    return digest({"asker": asker_site_id, "question": question.model_dump(mode="json")})[:16]


@dataclass(frozen=True)
class PeerAnswer:
    """What one site said to a question."""

    site: str
    status: str
    """``answered``, ``pending``, ``refused`` or ``unreachable``."""
    question_id: str = ""
    answer: Answer | None = None
    message: str = ""


class QuestionDesk:
    """Questions received from peers (kept under ``directory``) and asked of them."""

    def __init__(
        self,
        directory: Path,
        audit: AuditLog,
        loopback: LoopbackClient,
        client_for: Callable[[Peer], PeerClient],
    ) -> None:
        self.directory = directory
        self.audit = audit
        self.loopback = loopback
        self.client_for = client_for

    # Answering ----------------------------------------------------------------------------

    def receive(self, peer: Peer, raw: bytes) -> tuple[int, dict[str, Any]]:
        """HTTP status and body answering ``peer``'s question ``raw``."""
        try:
            question = Question.model_validate_json(raw)
        except ValidationError as error:
            message = "; ".join(
                f"{'.'.join(map(str, item['loc'])) or '/'}: {item['msg']}"
                for item in error.errors()
            )
            self.audit.append("question-invalid", peer=peer.name, message=message)
            return 400, {"status": "invalid", "detail": f"not a statistics question: {message}"}
        identifier = question_id(peer.site_id, question)
        try:
            screen_document(self.loopback, question.model_dump(mode="json"), what="question")
        except BundleRejected as error:
            self.audit.append(
                "question-refused",
                peer=peer.name,
                question_id=identifier,
                reason=error.reason,
                message=str(error),
            )
            status = 503 if error.reason == "screen-unavailable" else 403
            return status, {"state": "refused", "reason": str(error)}
        record = read_json(self._path(identifier), None)
        if record is None:
            record = {
                "question_id": identifier,
                "peer": peer.name,
                "site_id": peer.site_id,
                "question": question.model_dump(mode="json"),
                "state": "pending",
            }
            self.audit.append(
                "question-received",
                peer=peer.name,
                question_id=identifier,
                question=record["question"],
                policy=peer.questions,
            )
            if peer.questions == "refuse":
                self._refuse(
                    record, f"this site answers no questions of peer {peer.name}", "policy"
                )
            elif peer.questions == "auto":
                try:
                    self._answer(record, decided_by=f"auto policy of peer {peer.name}")
                except FederationError as error:
                    return 503, {"status": "unavailable", "detail": str(error)}
            write_json(self._path(identifier), record)
        return self.reply(record)

    def reply(self, record: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """HTTP status and body telling the asker the state of its question."""
        shown = ("question_id", "state", "answer", "reason")
        body: dict[str, Any] = {key: record[key] for key in shown if key in record}
        return _STATUS_CODES[record["state"]], body

    def status(self, peer: Peer, identifier: str) -> tuple[int, dict[str, Any]]:
        """The state of one of ``peer``'s questions (404 for another site's or an unknown id)."""
        record = read_json(self._path(identifier), None) if identifier.isalnum() else None
        if record is None or record["site_id"] != peer.site_id:
            return 404, {"detail": f"no question {identifier!r} of yours here"}
        return self.reply(record)

    def pending(self) -> list[dict[str, Any]]:
        """Questions waiting for a person's decision."""
        records = [json.loads(path.read_text()) for path in sorted(self.directory.glob("*.json"))]
        return [record for record in records if record["state"] == "pending"]

    def decide(self, identifier: str, *, approve: bool, decided_by: str = "cli") -> dict[str, Any]:
        """Answer or refuse a pending question (an id or a unique prefix of it)."""
        matches = [item for item in self.pending() if item["question_id"].startswith(identifier)]
        if len(matches) != 1:
            raise FederationError(
                f"no pending question {identifier!r} (see `openjip federation question list`)"
                if not matches
                else f"{identifier!r} matches several pending questions; give more characters"
            )
        (record,) = matches
        if approve:
            self._answer(record, decided_by=decided_by)
        else:
            self._refuse(record, f"refused by {decided_by}", "rejected")
        write_json(self._path(record["question_id"]), record)
        return record

    def _answer(self, record: dict[str, Any], *, decided_by: str) -> None:
        try:
            raw = self.loopback.post(STATISTICS_ROUTE, record["question"])
            answer = Answer.model_validate(raw)
            screen_document(self.loopback, answer.model_dump(mode="json"), what="answer")
        except BundleRejected as error:
            if error.reason != "patient-data":
                self._failed(record, error)
            self._refuse(record, str(error), error.reason)
            return
        except (LoopbackUnavailable, ValidationError) as error:
            self._failed(record, error)
        record.update(state="answered", answer=answer.model_dump(mode="json"))
        self.audit.append(
            "question-answered",
            peer=record["peer"],
            question_id=record["question_id"],
            decided_by=decided_by,
            answer=record["answer"],
        )

    def _failed(self, record: dict[str, Any], error: Exception) -> NoReturn:
        self.audit.append(
            "question-failed",
            peer=record["peer"],
            question_id=record["question_id"],
            message=str(error),
        )
        raise FederationError(f"this site cannot answer now: {error}") from error

    def _refuse(self, record: dict[str, Any], reason: str, code: str) -> None:
        record.update(state="refused", reason=reason)
        self.audit.append(
            "question-refused",
            peer=record["peer"],
            question_id=record["question_id"],
            reason=code,
            message=reason,
        )

    def _path(self, identifier: str) -> Path:
        return self.directory / f"{identifier}.json"

    # Asking -------------------------------------------------------------------------------

    def ask(self, question: Question, peers: list[Peer]) -> list[PeerAnswer]:
        """Send ``question`` to every peer in ``peers``; one :class:`PeerAnswer` each."""
        results = []
        body = canonical_json(question.model_dump(mode="json"))
        for peer in peers:
            self.audit.append("question-sent", peer=peer.name, question=json.loads(body))
            with self.client_for(peer) as client:
                result = self._ask_one(client, peer, body)
            self.audit.append(
                "answer-received",
                peer=peer.name,
                status=result.status,
                question_id=result.question_id,
                answer=result.answer.model_dump(mode="json") if result.answer else None,
                message=result.message,
            )
            results.append(result)
        return results

    def _ask_one(self, client: PeerClient, peer: Peer, body: bytes) -> PeerAnswer:
        try:
            status, raw = client.request("POST", QUESTIONS_ROUTE, body)
            reply = json.loads(raw)
            if not isinstance(reply, dict):
                raise ValueError("not a JSON object")
            answer = Answer.model_validate(reply["answer"]) if status == 200 else None
            if answer is not None:
                screen_document(self.loopback, answer.model_dump(mode="json"), what="answer")
        except BundleRejected as error:
            return PeerAnswer(peer.name, "refused", message=f"{error.reason}: {error}")
        except (FederationError, ValueError, KeyError) as error:
            return PeerAnswer(peer.name, "unreachable", message=str(error))
        state = {200: "answered", 202: "pending", 403: "refused"}.get(status, "unreachable")
        message = str(reply.get("reason") or reply.get("detail") or "")
        return PeerAnswer(peer.name, state, str(reply.get("question_id", "")), answer, message)


def combine(results: list[PeerAnswer]) -> list[dict[str, Any]]:
    """One row per cell shown by any site: its group, each site's count and their sum."""
    rows: dict[str, dict[str, Any]] = {}
    for result in results:
        for cell in result.answer.cells if result.answer else []:
            key = json.dumps(cell.group, sort_keys=True)
            row = rows.setdefault(key, {"group": cell.group, "sites": {}, "total": 0})
            row["sites"][result.site] = cell.count
            row["total"] += cell.count
    return [rows[key] for key in sorted(rows)]
