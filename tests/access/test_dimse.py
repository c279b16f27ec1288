"""Per-AE DIMSE permissions with dcmtk: an unknown AE, known AEs of projects p1 and p2, an AE
that may only find; refusals carry 0x0124 (or no C-MOVE context), the receiver refuses to be
open to unknown readers on a network address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from qr_peers import StorageSCP, dcmtk

from openjip.access import AccessAudit
from openjip.access.dimse import ReceiverWouldBeOpen, check_not_open
from openjip.config import ReceiverSettings
from openjip.config.settings import KnownAE

ALL = ["echo", "store", "find", "get", "move"]
CT = Path(str(get_testdata_file("CT_small.dcm")))
MR = Path(str(get_testdata_file("MR_small.dcm")))
SC = Path(str(get_testdata_file("SC_rgb.dcm")))


@pytest.fixture
def destination() -> Iterator[StorageSCP]:
    """DEST: a pynetdicom storage SCP on 127.0.0.1, a known AE with no permission of its own."""
    scp = StorageSCP("DEST").start()
    yield scp
    scp.stop()


@pytest.fixture
def receiver(receiver_factory: Any, destination: StorageSCP) -> Any:
    """Known AEs P1 (project p1, everything), P2 (project p2, everything), FINDONLY (p1, find)
    and DEST; unknown AEs keep the default (echo, store)."""
    return receiver_factory(
        known_aes={
            "P1": KnownAE(allow=ALL, projects=["p1"]),
            "P2": KnownAE(allow=ALL, projects=["p2"]),
            "FINDONLY": KnownAE(allow=["find"], projects=["p1"]),
            "BOTH": KnownAE(allow=["find"], projects=["p2", "p1"]),
            "DEST": KnownAE(host="127.0.0.1", port=destination.port, allow=[]),
        }
    )


def _store(receiver: Any, calling_ae: str, path: Path) -> Any:
    return dcmtk("storescu", "-v", "-aet", calling_ae, "-aec", "OPENJIP", *_peer(receiver), path)


def _find(receiver: Any, calling_ae: str) -> Any:
    return dcmtk(
        "findscu", "-v", "-S", "-aet", calling_ae, "-aec", "OPENJIP",
        "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", *_peer(receiver),
    )  # fmt: skip


def _get(receiver: Any, calling_ae: str, study: str, out: Path) -> Any:
    out.mkdir(parents=True, exist_ok=True)
    return dcmtk(
        "getscu", "-v", "-S", "-aet", calling_ae, "-aec", "OPENJIP", "-od", str(out),
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}", *_peer(receiver),
    )  # fmt: skip


def _move(receiver: Any, calling_ae: str, study: str) -> Any:
    return dcmtk(
        "movescu", "-v", "-S", "-aet", calling_ae, "-aec", "OPENJIP", "-aem", "DEST",
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}", *_peer(receiver),
    )  # fmt: skip


def _peer(receiver: Any) -> tuple[str, str]:
    host, port = receiver.address
    return host, str(port)


def _output(run: Any) -> str:
    return str(run.stdout) + str(run.stderr)


def _study(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).StudyInstanceUID)


def test_unknown_ae_may_echo_and_store_only(receiver: Any, tmp_path: Path) -> None:
    assert dcmtk("echoscu", "-aet", "STRANGER", "-aec", "OPENJIP", *_peer(receiver)).returncode == 0
    stored = _store(receiver, "STRANGER", CT)
    assert stored.returncode == 0, _output(stored)
    assert "Unknown Status: 0x124" in _output(_find(receiver, "STRANGER"))
    got = _get(receiver, "STRANGER", _study(CT), tmp_path / "got")
    assert "Unknown Status: 0x124" in _output(got)
    assert not list((tmp_path / "got").iterdir())
    # movescu exits 0 whatever happened: its output says it.
    assert "No valid Presentation Context" in _output(_move(receiver, "STRANGER", _study(CT)))
    audit = list(AccessAudit(receiver.settings.access_audit_path).entries())
    decisions = {(e["who"], e["kind"], e["action"], e["result"], e["study"]) for e in audit}
    assert decisions == {
        ("STRANGER", "ae", "store", "allowed", _study(CT)),
        ("STRANGER", "ae", "find", "denied", ""),
        ("STRANGER", "ae", "get", "denied", ""),
    }
    assert {e["surface"] for e in audit} == {"dimse"}


def test_known_ae_finds_gets_and_moves(
    receiver: Any, destination: StorageSCP, tmp_path: Path
) -> None:
    assert _store(receiver, "P1", CT).returncode == 0
    found = _find(receiver, "P1")
    assert "Received Final Find Response (Success)" in _output(found), _output(found)
    assert _study(CT) in _output(found)
    got = _get(receiver, "P1", _study(CT), tmp_path / "got")
    assert got.returncode == 0, _output(got)
    assert len(list((tmp_path / "got").iterdir())) == 1
    moved = _move(receiver, "P1", _study(CT))
    assert "Received Final Move Response (Success)" in _output(moved), _output(moved)
    assert len(destination.received) == 1


def _found_studies(receiver: Any, calling_ae: str) -> set[str]:
    run = _find(receiver, calling_ae)
    assert "Final Find Response (Success)" in _output(run), _output(run)
    return {study for study in map(_study, (CT, MR, SC)) if study in _output(run)}


def test_each_ae_stores_into_and_reads_from_its_projects(
    receiver: Any, destination: StorageSCP, tmp_path: Path
) -> None:
    """P1's CT goes to p1, P2's MR to p2, a stranger's SC to default; each known AE finds, gets
    and moves only its projects' studies, one of two projects sees both."""
    from openjip.index import Query, open_index

    for calling_ae, path in (("P1", CT), ("P2", MR), ("STRANGER", SC)):
        assert _store(receiver, calling_ae, path).returncode == 0
    index = open_index(receiver.settings)
    try:
        projects = {s.StudyInstanceUID: s.projects for s in index.find_studies(Query())}
    finally:
        index.close()
    assert projects == {_study(CT): ["p1"], _study(MR): ["p2"], _study(SC): ["default"]}
    assert _found_studies(receiver, "P1") == {_study(CT)}
    assert _found_studies(receiver, "P2") == {_study(MR)}
    assert _found_studies(receiver, "BOTH") == {_study(CT), _study(MR)}
    other = _get(receiver, "P1", _study(MR), tmp_path / "other")
    assert "Final Get Response (Success)" in _output(other) or other.returncode == 0
    assert not list((tmp_path / "other").iterdir())
    own = _get(receiver, "P2", _study(MR), tmp_path / "own")
    assert own.returncode == 0
    assert len(list((tmp_path / "own").iterdir())) == 1
    _move(receiver, "P1", _study(MR))
    assert destination.received == {}
    assert "Final Move Response (Success)" in _output(_move(receiver, "P2", _study(MR)))
    assert len(destination.received) == 1


def test_permissions_are_per_service(receiver: Any, tmp_path: Path) -> None:
    """FINDONLY may find, but not store, get or move."""
    assert _store(receiver, "P1", CT).returncode == 0
    refused = _store(receiver, "FINDONLY", MR)
    assert "Store Response (Unknown Status: 0x124)" in _output(refused), _output(refused)
    assert "Final Find Response (Success)" in _output(_find(receiver, "FINDONLY"))
    assert "Unknown Status: 0x124" in _output(_get(receiver, "FINDONLY", _study(CT), tmp_path))
    assert "No valid Presentation Context" in _output(_move(receiver, "FINDONLY", _study(CT)))


def test_unknown_aes_rejected_when_they_may_nothing(receiver_factory: Any) -> None:
    receiver = receiver_factory(
        unknown_ae_allow=[], known_aes={"P1": KnownAE(allow=ALL, projects=["p1"])}
    )
    rejected = _store(receiver, "STRANGER", CT)
    assert rejected.returncode != 0
    assert "Calling AE Title Not Recognized" in _output(rejected), _output(rejected)
    assert _store(receiver, "P1", CT).returncode == 0


def test_move_destinations_stays_an_alias(receiver_factory: Any, destination: Any) -> None:
    """The deprecated setting still names destinations; callers from it get what unknown AEs
    get."""
    from openjip.config.settings import MoveDestination

    receiver = receiver_factory(
        unknown_ae_allow=ALL,
        move_destinations={"DEST": MoveDestination(host="127.0.0.1", port=destination.port)},
    )
    assert _store(receiver, "ANY", CT).returncode == 0
    assert _move(receiver, "ANY", _study(CT)).returncode == 0
    assert len(destination.received) == 1


@pytest.mark.parametrize("action", ["find", "get", "move"])
def test_open_to_unknown_readers_on_a_network_address_refuses_to_start(action: str) -> None:
    settings = ReceiverSettings(host="0.0.0.0", unknown_ae_allow=["echo", "store", action])
    with pytest.raises(ReceiverWouldBeOpen, match="OPENJIP_RECEIVER__UNKNOWN_AE_ALLOW"):
        check_not_open(settings)
    check_not_open(settings.model_copy(update={"unknown_ae_reads_on_network": True}))
    check_not_open(settings.model_copy(update={"host": "127.0.0.1"}))
    check_not_open(ReceiverSettings(host="0.0.0.0"))  # echo and store only: fine


def test_receiver_command_names_the_setting(
    openjip_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from openjip.cli.main import app

    monkeypatch.setenv("OPENJIP_RECEIVER__HOST", "0.0.0.0")
    monkeypatch.setenv("OPENJIP_RECEIVER__UNKNOWN_AE_ALLOW", '["find"]')
    result = CliRunner().invoke(app, ["receiver"])
    assert result.exit_code != 0
    assert "OPENJIP_RECEIVER__UNKNOWN_AE_ALLOW" in result.output
    assert "Traceback" not in result.output
