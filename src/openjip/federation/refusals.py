"""Refused requests: rate-limited per caller address and written to the audit log in aggregate.

A flood of unsigned or forged requests must cost the site neither disk nor memory: each refusal
is counted in memory (and in the ``openjip_federation_refused_total`` metric, by reason), and
one ``requests-refused`` audit entry per interval sums them up — totals by reason and status
and the busiest addresses — instead of one fsynced line per request. An address refused more
than ``per_address_limit`` times in an interval gets 429 without its request being read or
verified until the interval ends. Every table here is bounded.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from typing import Any

from openjip.federation.audit import AuditLog

REPORTED_ADDRESSES = 10
"""How many of the busiest refused addresses one audit entry names."""


class RefusalTally:
    """Counts refusals of one interval; :meth:`flush` writes them as one audit entry."""

    def __init__(
        self,
        audit: AuditLog,
        *,
        interval_seconds: float,
        per_address_limit: int,
        max_addresses: int = 4096,
    ) -> None:
        self.audit = audit
        self.interval_seconds = interval_seconds
        self.per_address_limit = per_address_limit
        self.max_addresses = max_addresses
        self._lock = threading.Lock()
        self._start = time.time()
        self._reasons: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._addresses: OrderedDict[str, int] = OrderedDict()

    def throttled(self, address: str) -> bool:
        """``True`` when ``address`` was refused too often in this interval."""
        self._roll()
        with self._lock:
            return self._addresses.get(address, 0) >= self.per_address_limit

    def record(self, address: str, reason: str, status: int) -> None:
        """Count one refused request."""
        self._roll()
        with self._lock:
            self._reasons[reason] += 1
            self._statuses[status] += 1
            self._addresses[address] = self._addresses.pop(address, 0) + 1
            while len(self._addresses) > self.max_addresses:
                # The least recently refused address is forgotten first.
                self._addresses.popitem(last=False)

    def _roll(self) -> None:
        if time.time() - self._start >= self.interval_seconds:
            self.flush()

    def flush(self) -> dict[str, Any] | None:
        """Write the interval's refusals as one audit entry (none when there were none)."""
        with self._lock:
            start, now = self._start, time.time()
            reasons, statuses, addresses = self._reasons, self._statuses, self._addresses
            self._start = now
            self._reasons, self._statuses, self._addresses = Counter(), Counter(), OrderedDict()
        total = sum(reasons.values())
        if not total:
            return None
        busiest = sorted(addresses.items(), key=lambda item: -item[1])[:REPORTED_ADDRESSES]
        return self.audit.append(
            "requests-refused",
            since=round(start, 3),
            until=round(now, 3),
            total=total,
            by_reason=dict(sorted(reasons.items())),
            by_status={str(status): count for status, count in sorted(statuses.items())},
            addresses=dict(busiest),
            distinct_addresses=len(addresses),
        )
