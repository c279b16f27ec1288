"""The re-identification table of a project that asks for one (``reidentification: true`` in
its policy): pseudonym → the patient's original Patient ID and name, for the day a finding must
reach the patient. No project has one unless it asks.

One JSON line per patient in ``$OPENJIP_HOME/deid/reidentification/<project>.jsonl`` (0600, in
a 0700 folder): the pseudonym in clear (to find the line) and the identity sealed with
AES-256-GCM under a key derived (HKDF-SHA256) from the site's de-identification secret, the
pseudonym as associated data (a line cannot be moved to another pseudonym). Only who holds the
site secret can open it: the site's administrators, with ``openjip reidentify`` (audited).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from openjip.access.files import open_private_append

TABLE_DIR = Path("deid") / "reidentification"
KEY_INFO = b"openjip re-identification table"


def table_path(home: Path, project: str) -> Path:
    """Where the table of ``project`` is kept under ``OPENJIP_HOME``."""
    return home / TABLE_DIR / f"{project}.jsonl"


class ReidentificationTable:
    """Appends and opens the sealed identities of one project's patients."""

    def __init__(self, path: Path, secret: bytes) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO).derive(secret)
        self.path = path
        self._aead = AESGCM(key)
        self._recorded: set[str] = set()
        self._lock = threading.Lock()

    def record(self, pseudonym: str, patient_id: str, patient_name: str) -> None:
        """Keep who ``pseudonym`` is (once per patient and process; a repeat is harmless)."""
        with self._lock:
            if pseudonym in self._recorded:
                return
            self._recorded.add(pseudonym)
        identity = json.dumps({"PatientID": patient_id, "PatientName": patient_name}).encode()
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, identity, pseudonym.encode())
        line = {
            "pseudonym": pseudonym,
            "nonce": base64.b64encode(nonce).decode(),
            "sealed": base64.b64encode(sealed).decode(),
        }
        descriptor = open_private_append(self.path)
        try:
            os.write(descriptor, (json.dumps(line) + "\n").encode())  # one append: a whole line
        finally:
            os.close(descriptor)

    def lookup(self, pseudonym: str) -> list[dict[str, Any]]:
        """The identities recorded for ``pseudonym`` (normally one); ValueError when a line does
        not open (another site secret, or tampered with)."""
        from cryptography.exceptions import InvalidTag

        found: list[dict[str, Any]] = []
        if not self.path.exists():
            return found
        for text in self.path.read_text().splitlines():
            line = json.loads(text)
            if line.get("pseudonym") != pseudonym:
                continue
            try:
                identity = self._aead.decrypt(
                    base64.b64decode(line["nonce"]),
                    base64.b64decode(line["sealed"]),
                    pseudonym.encode(),
                )
            except InvalidTag as error:
                raise ValueError(
                    f"a line of {self.path} does not open with this site's secret"
                ) from error
            value = json.loads(identity)
            if value not in found:
                found.append(value)
        return found
