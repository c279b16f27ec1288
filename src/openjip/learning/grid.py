"""A Flower ``Grid`` whose messages travel through openjip's federation channel.

Flower's strategies drive rounds through a ``Grid`` (push messages to nodes, pull their
replies). Here each node is a site: messages to a peer are queued at this site's federation
service (the :class:`Channel`), which the peer fetches and answers with signed requests; the
coordinator's own node, when it trains too, is its ``ClientApp`` called in-process (its data
does not leave the site at all). A reply is used only when it holds exactly the declared tensors
and metrics (:func:`~openjip.learning.wire.check_reply`); a round that ends its timeout with
fewer replies than the spec's minimum sites fails the run instead of going on.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any, Protocol

from flwr.app import Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from openjip.learning.client import node_context
from openjip.learning.wire import WireRefused, check_reply, decode, encode, shapes

log = logging.getLogger(__name__)
COORDINATOR_NODE = 0
"""Source node id of the coordinator's messages."""


class RoundFailed(Exception):
    """A round cannot go on (too few sites replied in time); the message says which."""


class Channel(Protocol):
    """Where the coordinator's messages to peers wait and their replies arrive."""

    def push(self, messages: list[dict[str, Any]]) -> None:
        """Queue messages for peers."""

    def replies(self) -> dict[str, dict[str, Any]]:
        """Every reply received so far, by the id of the message it answers."""


def node_id_of(site_id: str) -> int:
    """The Flower node id of a site (from its site id, stable)."""
    return int(site_id[:15], 16) or 1


def _round_of(message: Message) -> int:
    """The strategy's round of a message (its group id, or the ``server-round`` it sends)."""
    if message.metadata.group_id.isdigit():
        return int(message.metadata.group_id)
    config = message.content.config_records.get("config")
    value = config.get("server-round", 0) if config is not None else 0
    return int(value) if isinstance(value, int | float) else 0


class FederationGrid(Grid):
    """Nodes are the joined sites; see the module docstring."""

    def __init__(
        self,
        channel: Channel,
        sites: list[str],
        *,
        local: tuple[str, ClientApp] | None,
        min_sites: int,
        poll_seconds: float,
    ) -> None:
        self.channel = channel
        self.sites = {node_id_of(site): site for site in sites}
        self.local: tuple[int, ClientApp] | None = None
        if local is not None:
            site_id, app = local
            self.local = (node_id_of(site_id), app)
            self.sites[self.local[0]] = site_id
        self.min_sites = min_sites
        self.poll_seconds = poll_seconds
        self._run = Run.create_empty(run_id=0)
        self._sent: dict[str, Message] = {}
        self._local_replies: dict[str, Message] = {}
        self.refused: list[str] = []
        """Why replies were not used (for the run's log and metrics)."""

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.sites)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        remote = []
        ids = []
        for message in messages:
            message_id = uuid.uuid4().hex
            message.metadata.__dict__["_message_id"] = message_id
            message.metadata.__dict__["_src_node_id"] = COORDINATOR_NODE
            self._sent[message_id] = message
            ids.append(message_id)
            node = message.metadata.dst_node_id
            if self.local and node == self.local[0]:
                self._local_replies[message_id] = self.local[1](message, node_context(node))
                continue
            remote.append(
                {
                    "message_id": message_id,
                    "site_id": self.sites[node],
                    "message_type": message.metadata.message_type,
                    "round": _round_of(message),
                    "content": encode(message.content),
                }
            )
        if remote:
            self.channel.push(remote)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        wanted = set(message_ids)
        found = [self._local_replies.pop(i) for i in list(wanted) if i in self._local_replies]
        for message_id, reply in self.channel.replies().items():
            sent = self._sent.get(message_id)
            if message_id not in wanted or sent is None:
                continue
            del self._sent[message_id]
            try:
                check_reply(
                    reply["content"],
                    sent.metadata.message_type,
                    shapes(encode(sent.content)),
                )
                content = decode(reply["content"])
            except WireRefused as error:
                note = f"reply of site {reply.get('site_id')} refused: {error}"
                log.warning(note)
                self.refused.append(note)
                continue
            found.append(Message(content, reply_to=sent))
        return found

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        pending = set(self.push_messages(messages))
        expected = len(pending)
        deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
        replies: list[Message] = []
        while pending:
            for reply in self.pull_messages(pending):
                replies.append(reply)
                pending.discard(reply.metadata.reply_to_message_id)
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(self.poll_seconds)
        if expected and len(replies) < self.min_sites:
            missing = sorted({self.sites[self._sent[i].metadata.dst_node_id] for i in pending})
            raise RoundFailed(
                f"only {len(replies)} of {expected} sites replied in time (minimum "
                f"{self.min_sites}); no usable reply from {', '.join(missing) or 'none'}"
                + (f"; {'; '.join(self.refused)}" if self.refused else "")
            )
        for message_id in pending:
            self._sent.pop(message_id, None)
        return replies
