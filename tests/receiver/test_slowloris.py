"""Slowloris: while 32 peers drip their A-ASSOCIATE-RQ, 32 associated peers drip a PDU, 300
connections sit silent and one peer stalls inside a 4 GiB PDV (each coming back as soon as it
is cut off), a known AE's storescu of 50 instances succeeds in at most about twice its quiet
time, and every attacker is gone within the limit that applies to it (small limits here)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from raw_peer import RawAssociation, command_set, message
from receiver_peers import dcmtk, storescu_successes
from slowloris import Attack

from openjip.config.settings import MoveDestination
from openjip.phantom import write_ct_series

LIMITS = {
    "association_request_timeout": 2.0,
    "idle_timeout": 2.0,
    "pdu_timeout": 4.0,
    "message_timeout": 8.0,
    "release_timeout": 2.0,
    "max_negotiating": 32,
}
LIMIT_OF_ATTACK = {
    "dripping request": LIMITS["association_request_timeout"],
    "silent": LIMITS["association_request_timeout"],
    "dripping pdata": LIMITS["pdu_timeout"],
    "stalled pdv": LIMITS["idle_timeout"],
}
SLACK = 10.0
"""Seconds allowed beyond a limit, and beyond twice the quiet time, on a loaded machine."""


@pytest.fixture(scope="module")
def series_50(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_ct_series(tmp_path_factory.mktemp("slowloris"), slices=50, rows=128, columns=128)


def _storescu(receiver: Any, files: list[Path]) -> float:
    started = time.monotonic()
    result = dcmtk(
        "storescu", "-v", "-aet", "SCANNER", "-aec", "OPENJIP",
        receiver.host, str(receiver.port), *map(str, files),
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(storescu_successes(result.stdout + result.stderr)) == len(files)
    return elapsed


def _echo(receiver: Any) -> int:
    peer = RawAssociation.open(receiver.address, [(3, "1.2.840.10008.1.1", ["1.2.840.10008.1.2"])])
    fields = {"AffectedSOPClassUID": "1.2.840.10008.1.1", "CommandField": 0x0030,
              "MessageID": 1, "CommandDataSetType": 0x0101}  # fmt: skip
    peer.send(message(3, command_set(fields), None))
    response = peer.response()
    peer.release()
    return -1 if response is None else int(response.Status)


def test_a_known_ae_is_served_during_a_slowloris_attack(
    receiver_factory: Callable[..., Any], series_50: list[Path]
) -> None:
    receiver = receiver_factory(
        workers=2,
        move_destinations={"SCANNER": MoveDestination(host="127.0.0.1", port=104)},
        **LIMITS,
    )
    quiet = _storescu(receiver, series_50)
    attack = Attack(receiver.address)
    attack.start()
    try:
        time.sleep(LIMITS["pdu_timeout"] + 1)  # every kind of attacker at work, some cut off
        attacked = _storescu(receiver, series_50)
        time.sleep(max(0.0, LIMITS["pdu_timeout"] + 1 - attacked))
    finally:
        held = attack.stop()
    print(  # the figures of the report (pytest -s)
        f"\nstorescu of {len(series_50)}: {quiet:.2f} s quiet, {attacked:.2f} s under attack; "
        + "; ".join(
            f"{kind}: {len(times)} cut off, longest held {max(times):.2f} s"
            for kind, times in sorted(held.items())
        )
    )
    assert attacked <= 2 * quiet + SLACK
    for kind, limit in LIMIT_OF_ATTACK.items():
        assert held.get(kind), f"no {kind} attacker was cut off"
        assert max(held[kind]) <= limit + SLACK, (kind, max(held[kind]))
    assert _echo(receiver) == 0x0000
