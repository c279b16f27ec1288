"""Keyed pseudonyms: patient IDs, UIDs and per-patient date shifts from one site secret.

Everything is an HMAC-SHA256 of the original value under the site secret (``deid.secret``
under ``OPENJIP_HOME``, or ``OPENJIP_DEID__SECRET_FILE``; created 0600), so the same site gives
the same pseudonym to the same patient and the same new UID to the same UID in every run (a SEG
and its CT de-identified apart still reference each other), and nobody without the secret can
recompute the mapping.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from openjip.state.versions import ensure_store
from openjip.statistics.loopback import ensure_secret

SECRET_FILE = "deid.secret"
MAX_SHIFT_DAYS = 3650


def site_secret(home: Path, path: Path | None = None) -> bytes:
    """The de-identification secret of the site with this ``OPENJIP_HOME``, in ``path``
    (``Settings.deid_secret_path``; default ``home/deid.secret``), created 0600 (never
    replaced) when there is none yet; :class:`~openjip.state.StateTooNew` when a newer
    openjip's pseudonyms derive otherwise."""
    ensure_store(home, "deid-secret")
    return ensure_secret(path or home / SECRET_FILE).encode()


def read_secret(path: Path) -> bytes:
    """The secret in ``path`` (a step's mounted copy); never creates one: a step with a secret
    of its own would give every patient other pseudonyms than the site's."""
    secret = path.read_text().strip()
    if not secret:
        raise ValueError(f"the de-identification secret {path} is empty")
    return secret.encode()


@dataclass(frozen=True)
class Pseudonyms:
    secret: bytes

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self.secret, f"{kind}\0{value}".encode(), hashlib.sha256).digest()

    def patient(self, patient_key: str) -> str:
        """The patient's pseudonym (used as Patient ID and Patient's Name)."""
        return "P" + self._digest("patient", patient_key).hex()[:15].upper()

    def uid(self, uid: str) -> str:
        """A new UID under 2.25 (UUID-derived arc), the same for the same UID on this site."""
        return "2.25." + str(int.from_bytes(self._digest("uid", uid)[:16], "big"))

    def day_shift(self, patient_key: str) -> datetime.timedelta:
        """How far every date of this patient moves back: one shift for all its studies."""
        days = int.from_bytes(self._digest("shift", patient_key)[:4], "big") % MAX_SHIFT_DAYS
        return datetime.timedelta(days=days + 1)
