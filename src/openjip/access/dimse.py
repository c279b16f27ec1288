"""Who may do what over DIMSE: each calling AE's services and projects.

A calling AE listed in ``receiver.known_aes`` may use the services of its ``allow`` list and
sees the studies of its ``projects`` (what it stores goes to the first one). Any other AE gets
``receiver.unknown_ae_allow`` (default echo and store) and the ``default`` project, as in
Orthanc. The receiver asks :class:`DimseAccess` before it answers a request and sends
0x0124 (refused: not authorized) when it says no; every decision on a request that touches
patient data goes to the access audit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
)

from openjip.access.anonymous import is_loopback
from openjip.access.audit import ALLOWED, DENIED, AccessAudit
from openjip.access.roles import ALL_PROJECTS, DEFAULT_PROJECT
from openjip.config.settings import DimseAction, KnownAE, ReceiverSettings, Settings
from openjip.index.base import Query

LOGGER = logging.getLogger(__name__)

NOT_AUTHORIZED = 0x0124
"""DIMSE status "Refused: Not Authorized" (PS3.7 C.5)."""
DATA_ACTIONS: frozenset[DimseAction] = frozenset({"store", "find", "get", "move"})
"""Services that touch patient data (C-ECHO does not): their decisions are audited."""
READ_ACTIONS: frozenset[DimseAction] = frozenset({"find", "get", "move"})
MOVE_MODELS = frozenset(
    {PatientRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelMove}
)


class ReceiverWouldBeOpen(ValueError):
    """Unknown AEs could read patient data from a network address; the message names the
    setting to change."""


@dataclass(frozen=True)
class Grant:
    """What one calling AE may do and see."""

    ae_title: str
    allow: frozenset[DimseAction]
    projects: tuple[str, ...]
    known: bool

    @property
    def store_project(self) -> str:
        """The project instances this AE stores are assigned to."""
        return DEFAULT_PROJECT if self.projects[0] == ALL_PROJECTS else self.projects[0]

    def restrict(self, query: Query) -> Query:
        """``query`` limited to the AE's projects (all of them for ``*``)."""
        query.projects = [] if ALL_PROJECTS in self.projects else list(self.projects)
        return query


@dataclass(frozen=True)
class Decision:
    """Whether an AE may do one thing, and the Error Comment of a refusal."""

    grant: Grant
    action: DimseAction
    allowed: bool

    @property
    def comment(self) -> str:
        """What a refused AE is told."""
        return f"AE {self.grant.ae_title} may not {self.action}"


def known_aes(settings: ReceiverSettings) -> dict[str, KnownAE]:
    """``known_aes`` plus the entries of the deprecated ``move_destinations`` not in it
    (addresses only: as callers they get what unknown AEs get)."""
    known = dict(settings.known_aes)
    for title, destination in settings.move_destinations.items():
        if title not in known:
            known[title] = KnownAE(
                host=destination.host, port=destination.port, allow=settings.unknown_ae_allow
            )
    return known


class DimseAccess:
    """The DIMSE access rules of one receiver."""

    def __init__(self, settings: ReceiverSettings, audit: AccessAudit | None = None) -> None:
        if settings.move_destinations:
            LOGGER.warning(
                "OPENJIP_RECEIVER__MOVE_DESTINATIONS is deprecated: "
                "use OPENJIP_RECEIVER__KNOWN_AES (same host and port, plus allow and projects)"
            )
        self.known = known_aes(settings)
        self.unknown_allow: frozenset[DimseAction] = frozenset(settings.unknown_ae_allow)
        self._audit = audit

    @classmethod
    def for_site(cls, settings: Settings) -> DimseAccess:
        """The rules of the site's receiver, auditing into the site's access audit."""
        audit = AccessAudit(settings.access_audit_path, max_bytes=settings.access.audit_max_bytes)
        return cls(settings.receiver, audit)

    def grant(self, ae_title: str) -> Grant:
        """The permissions and projects of ``ae_title`` (spaces around it do not count)."""
        title = ae_title.strip()
        known = self.known.get(title)
        if known is None:
            return Grant(title, self.unknown_allow, (DEFAULT_PROJECT,), known=False)
        return Grant(title, frozenset(known.allow), tuple(known.projects), known=True)

    def on_association_requested(self, event: Any) -> None:
        """``EVT_REQUESTED`` handler, before negotiation: an AE that may do nothing is
        rejected (calling AE title not recognised); one that may not move is offered no
        C-MOVE context, since pynetdicom can only answer a C-MOVE after reaching its
        destination (every other refusal is a DIMSE status, 0x0124)."""
        assoc = event.assoc
        # Before negotiation the calling AE title is only in the A-ASSOCIATE request.
        grant = self.grant(str(assoc.requestor.primitive.calling_ae_title))
        if not grant.allow:
            LOGGER.warning("association from AE %r rejected: not allowed", grant.ae_title)
            self.audit(grant.ae_title, "associate", "", False)
            assoc.acse.send_reject(0x01, 0x01, 0x03)
            assoc.is_rejected = True
            assoc.is_established = False
            assoc.kill()
            return
        if "move" not in grant.allow:
            assoc.acceptor.supported_contexts = [
                context
                for context in assoc.acceptor.supported_contexts
                if context.abstract_syntax not in MOVE_MODELS
            ]

    def on_echo(self, event: Any) -> int:
        """``EVT_C_ECHO`` handler: success, or 0x0124 when the AE may not echo."""
        return 0x0000 if self.for_request(event, "echo").allowed else NOT_AUTHORIZED

    def for_request(self, event: Any, action: DimseAction) -> Decision:
        """:meth:`decide` for the calling AE of a pynetdicom request event."""
        return self.decide(str(event.assoc.requestor.ae_title), action)

    def decide(self, ae_title: str, action: DimseAction, *, audit_allowed: bool = True) -> Decision:
        """Whether the AE may ``action``; audited when the action touches patient data (an
        allowed one only with ``audit_allowed``: C-STORE audits once it knows the study)."""
        grant = self.grant(ae_title)
        decision = Decision(grant, action, action in grant.allow)
        if not decision.allowed:
            LOGGER.warning("%s from AE %r refused: not allowed", action, grant.ae_title)
        if action in DATA_ACTIONS and (audit_allowed or not decision.allowed):
            self.audit(grant.ae_title, action, "", decision.allowed)
        return decision

    def audit(
        self, ae_title: str, action: str, study: str, allowed: bool, detail: str = ""
    ) -> None:
        """Record one decision in the access audit."""
        if self._audit is not None:
            self._audit.record(
                ae_title.strip(),
                action,
                ALLOWED if allowed else DENIED,
                study=study,
                surface="dimse",
                detail=detail,
                kind="ae",
            )

    def destination(self, ae_title: str) -> KnownAE | None:
        """The known AE ``ae_title`` as a C-MOVE destination, if it has an address."""
        known = self.known.get(ae_title.strip())
        if known is None or not known.host or known.port is None:
            return None
        return known


def check_not_open(settings: ReceiverSettings) -> None:
    """Refuse a receiver on a network address that lets unknown AEs read patient data."""
    readable = sorted(READ_ACTIONS & set(settings.unknown_ae_allow))
    if not readable or is_loopback(settings.host) or settings.unknown_ae_reads_on_network:
        return
    raise ReceiverWouldBeOpen(
        f"OPENJIP_RECEIVER__UNKNOWN_AE_ALLOW lets any AE {', '.join(readable)} while the "
        f"receiver binds {settings.host}, a network address: list the AEs that may in "
        "OPENJIP_RECEIVER__KNOWN_AES, bind 127.0.0.1, or set "
        "OPENJIP_RECEIVER__UNKNOWN_AE_READS_ON_NETWORK=true if the network is closed"
    )
