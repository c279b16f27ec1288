"""Fixtures of the receiver tests; helpers live in receiver_peers.py."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import _config

from openjip.config import Settings

# The tests import receiver_peers (pytest's importlib mode puts no test folder on sys.path).
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def raw_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """pynetdicom sends files' encoded datasets as they are (no decode/re-encode)."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)


@pytest.fixture(params=["openjip", "pynetdicom"])
def pdata_reader(request: pytest.FixtureRequest) -> str:
    """Who reads P-DATA (``receiver.pdata_reader``): every receiver test runs with both."""
    return str(request.param)


@pytest.fixture
def receiver_factory(receiver_factory: Callable[..., Any], pdata_reader: str) -> Callable[..., Any]:
    """The suite's ``receiver_factory`` with this test's P-DATA reader (unless it names one)."""

    def start(
        settings_override: Settings | None = None, listeners: Any = (), **receiver: Any
    ) -> Any:
        receiver.setdefault("pdata_reader", pdata_reader)
        return receiver_factory(settings_override, listeners, **receiver)

    return start
