"""Fixtures of the receiver tests; helpers live in receiver_peers.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pynetdicom import _config

# The tests import receiver_peers (pytest's importlib mode puts no test folder on sys.path).
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def raw_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """pynetdicom sends files' encoded datasets as they are (no decode/re-encode)."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
