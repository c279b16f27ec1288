"""Who may open an association now: the connection limits that keep one bad peer from
costing the others their service.

:class:`AdmissionPolicy` counts what is open and decides at two moments, both called by the
gate (:mod:`openjip.receiver.gate`) in its one thread:

- a connection arrives (:meth:`AdmissionPolicy.connect`): refused when its source address
  already holds ``max_connections_per_address`` connections;
- its A-ASSOCIATE-RQ is complete (:meth:`AdmissionPolicy.admit`): refused when its calling
  AE holds ``max_associations_per_ae`` associations, or the receiver ``max_associations``;
  unknown AEs may use only ``max_associations - reserved_for_known_aes`` of them, so known
  AEs (:func:`known_aes`) are never starved by unknown ones.

This is also the place for further acceptance rules on the requested association (which AE
may do what): they get the parsed request and answer with a refusal reason.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field

from openjip.config import ReceiverSettings


def known_aes(settings: ReceiverSettings) -> frozenset[str]:
    """Calling AE titles the site knows: its allow-list, its known AEs and its C-MOVE
    destinations."""
    return frozenset(
        title.strip()
        for title in (
            *settings.allowed_calling_aes,
            *settings.known_aes,
            *settings.move_destinations,
        )
    )


@dataclass(frozen=True)
class AssociateRequest:
    """The fields of an A-ASSOCIATE-RQ PDU the admission looks at (PS3.8 9.3.2)."""

    called_ae: str
    calling_ae: str

    @classmethod
    def parse(cls, pdu: bytes) -> AssociateRequest:
        """The AE titles of a whole A-ASSOCIATE-RQ (at least 74 bytes, checked by the gate)."""
        return cls(
            called_ae=pdu[10:26].decode("ascii", "replace").strip(),
            calling_ae=pdu[26:42].decode("ascii", "replace").strip(),
        )


_NUMBERS = itertools.count(1)


@dataclass(frozen=True)
class Admission:
    """An admitted association: its peer, its request as read by the gate, and the number
    by which its end is reported back (:meth:`AdmissionPolicy.release`)."""

    address: tuple[str, int]
    calling_ae: str
    known: bool
    request: bytes = field(repr=False)
    number: int = field(default_factory=lambda: next(_NUMBERS))


class AdmissionPolicy:
    """The counts of open connections and associations, and the decisions on them
    (thread-safe: associations end in their own threads)."""

    def __init__(self, settings: ReceiverSettings) -> None:
        self.settings = settings
        self.known = known_aes(settings)
        self._lock = threading.Lock()
        self._per_address: Counter[str] = Counter()
        self._per_ae: Counter[str] = Counter()
        self._associations = 0
        self._unknown_associations = 0

    def connect(self, host: str) -> bool:
        """Whether a new connection from ``host`` may send its request; counts it if so."""
        with self._lock:
            if self._per_address[host] >= self.settings.max_connections_per_address:
                return False
            self._per_address[host] += 1
            return True

    def disconnect(self, host: str) -> None:
        """A connection counted by :meth:`connect` ended before it was admitted."""
        with self._lock:
            self._drop_address(host)

    def admit(
        self, address: tuple[str, int], request: AssociateRequest, pdu: bytes
    ) -> Admission | str:
        """The admission of a complete request, or why it is refused (the connection stays
        counted for its address until :meth:`disconnect`)."""
        settings = self.settings
        calling_ae = request.calling_ae
        known = calling_ae in self.known
        with self._lock:
            if self._per_ae[calling_ae] >= settings.max_associations_per_ae:
                return f"{calling_ae!r} has {settings.max_associations_per_ae} associations open"
            if self._associations >= settings.max_associations:
                return f"{settings.max_associations} associations open"
            room_for_unknown = settings.max_associations - settings.reserved_for_known_aes
            if not known and self._unknown_associations >= room_for_unknown:
                return f"the {room_for_unknown} associations for unknown AEs are open"
            self._per_ae[calling_ae] += 1
            self._associations += 1
            self._unknown_associations += 0 if known else 1
        return Admission(address, calling_ae, known, pdu)

    def release(self, admission: Admission) -> None:
        """An admitted association ended."""
        with self._lock:
            self._per_ae[admission.calling_ae] -= 1
            if not self._per_ae[admission.calling_ae]:
                del self._per_ae[admission.calling_ae]
            self._associations -= 1
            self._unknown_associations -= 0 if admission.known else 1
            self._drop_address(admission.address[0])

    def _drop_address(self, host: str) -> None:
        self._per_address[host] -= 1
        if not self._per_address[host]:
            del self._per_address[host]
