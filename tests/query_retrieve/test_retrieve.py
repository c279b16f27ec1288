"""C-MOVE and C-GET SCP with dcmtk movescu/getscu and storescp: instances arrive exactly as
stored, sub-operations are counted, failures listed, unknown destinations refused."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from qr_peers import StorageSCP, dataset_bytes, dcmtk, received_dataset

from openjip.config.settings import MoveDestination

PHANTOM_SLICES = 24


@pytest.fixture
def move_site(receiver_factory, site_data) -> Iterator[tuple[Any, StorageSCP]]:
    """The test site's receiver with one C-MOVE destination, DEST: a pynetdicom storage SCP."""
    destination = StorageSCP("DEST").start()
    try:
        receiver = receiver_factory(
            move_destinations={"DEST": MoveDestination(host="127.0.0.1", port=destination.port)}
        )
        yield receiver, destination
    finally:
        destination.stop()


def test_getscu_study_arrives_byte_identical(running_receiver, site_data, tmp_path: Path) -> None:
    out = tmp_path / "got"
    out.mkdir()
    run = dcmtk(
        "getscu",
        "-v",
        "-S",
        "-aec",
        "OPENJIP",
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={site_data.phantom_study}",
        "127.0.0.1",
        str(running_receiver.port),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    got = sorted(out.iterdir())
    assert len(got) == PHANTOM_SLICES
    originals = {dataset_bytes(path.read_bytes()) for path in site_data.files.values()}
    for path in got:
        assert dataset_bytes(path.read_bytes()) in originals


def test_movescu_to_a_pynetdicom_destination(move_site, site_data, tmp_path: Path) -> None:
    receiver, destination = move_site
    run = dcmtk(
        "movescu",
        "-v",
        "-S",
        "-aec",
        "OPENJIP",
        "-aem",
        "DEST",
        "-k",
        "QueryRetrieveLevel=SERIES",
        "-k",
        f"StudyInstanceUID={site_data.phantom_study}",
        "-k",
        f"SeriesInstanceUID={site_data.phantom_series}",
        "127.0.0.1",
        str(receiver.port),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Received Final Move Response (Success)" in run.stderr
    assert len(destination.received) == PHANTOM_SLICES
    for uid, data in destination.received.items():
        assert data == dataset_bytes(site_data.files[uid].read_bytes())


def test_move_to_unknown_destination_is_refused(running_receiver, site_data) -> None:
    run = dcmtk(
        "movescu",
        "-S",
        "-aec",
        "OPENJIP",
        "-aem",
        "NOWHERE",
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={site_data.phantom_study}",
        "127.0.0.1",
        str(running_receiver.port),
    )
    assert "Refused: MoveDestinationUnknown" in run.stderr


def identifier_sop(site_data, patient_id: str) -> str:
    """The SOPInstanceUID of the single-instance study of ``patient_id``."""
    study = site_data.studies[patient_id]
    (uid,) = [
        uid for uid, path in site_data.files.items() if dcmread(path).StudyInstanceUID == study
    ]
    return uid


def _move(
    address: tuple[str, int], identifier: Dataset, destination: str
) -> list[tuple[Dataset, Dataset | None]]:
    ae = AE(ae_title="SCU")
    ae.acse_timeout = ae.dimse_timeout = 30
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate(*address, ae_title="OPENJIP")
    assert assoc.is_established
    try:
        return list(
            assoc.send_c_move(identifier, destination, StudyRootQueryRetrieveInformationModelMove)
        )
    finally:
        assoc.release()
        ae.shutdown()


def test_failed_sub_operations_are_counted_and_listed(move_site, site_data) -> None:
    receiver, destination = move_site
    lost = sorted(uid for uid, path in site_data.files.items() if "ct-phantom" in str(path))[:2]
    objects = receiver.settings.storage_path
    for key in (objects / "dicom").rglob("*.dcm"):
        if key.stem in lost:
            key.unlink()
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = site_data.phantom_study
    final, failed = _move(receiver.address, identifier, "DEST")[-1]
    assert final.Status == 0xB000  # sub-operations complete, one or more failures
    assert sorted(failed.FailedSOPInstanceUIDList) == lost
    assert final.NumberOfCompletedSuboperations == PHANTOM_SLICES - 2
    assert final.NumberOfFailedSuboperations == 2
    assert len(destination.received) == PHANTOM_SLICES - 2


def test_move_without_the_levels_unique_key_is_refused(move_site, site_data) -> None:
    receiver, destination = move_site
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "SERIES"
    identifier.StudyInstanceUID = site_data.phantom_study
    final, _ = _move(receiver.address, identifier, "DEST")[-1]
    assert final.Status == 0xA900
    assert "SeriesInstanceUID" in final.ErrorComment
    assert destination.received == {}


def test_c_get_without_the_storage_role_fails_each_instance(running_receiver, site_data) -> None:
    ae = AE(ae_title="SCU")
    ae.acse_timeout = ae.dimse_timeout = 30
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)  # proposed, but not with the SCP role
    assoc = ae.associate(*running_receiver.address, ae_title="OPENJIP")
    assert assoc.is_established
    try:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        identifier.StudyInstanceUID = site_data.studies["1CT1"]
        final, failed = list(
            assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)
        )[-1]
        assert final.Status == 0xA702  # every sub-operation failed
        assert final.NumberOfFailedSuboperations == 1
        assert failed.FailedSOPInstanceUIDList == identifier_sop(site_data, "1CT1")
    finally:
        assoc.release()
        ae.shutdown()


def test_movescu_to_dcmtk_storescp_in_a_namespace(netns, settings, site_data, tmp_path) -> None:
    """storescp listens on every interface: it, the receiver and movescu share a private
    network namespace."""
    received = tmp_path / "storescp"
    received.mkdir()
    netns.start(
        "/usr/bin/storescp", "+xa", "+B", "-aet", "STORESCP", "-od", str(received), "11113",
        log=tmp_path / "storescp.log",
    )  # fmt: skip
    env = {
        "OPENJIP_HOME": os.environ["OPENJIP_HOME"],
        "OPENJIP_RECEIVER__PORT": "11112",
        "OPENJIP_RECEIVER__WORKERS": "2",
        "OPENJIP_RECEIVER__MOVE_DESTINATIONS": json.dumps(
            {"STORESCP": {"host": "127.0.0.1", "port": 11113}}
        ),
    }
    netns.start(sys.executable, "-m", "openjip.receiver", log=tmp_path / "receiver.log", env=env)
    netns.wait_for_echo(11113, "STORESCP")
    netns.wait_for_echo(11112, "OPENJIP")
    run = netns.run(
        "/usr/bin/movescu", "-v", "-S", "-aec", "OPENJIP", "-aem", "STORESCP",
        "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={site_data.studies['ID1']}\\{site_data.studies['1CT1']}",
        "127.0.0.1", "11112",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    stored = sorted(received.iterdir())
    assert len(stored) == 2
    originals = {dataset_bytes(path.read_bytes()) for path in site_data.files.values()}
    for path in stored:
        assert dataset_bytes(path.read_bytes()) in originals


def test_c_get_with_roles_in_pynetdicom(running_receiver, site_data, tmp_path) -> None:
    """RLE data comes back in RLE: nothing is transcoded."""
    from pynetdicom import evt
    from pynetdicom.sop_class import SecondaryCaptureImageStorage  # type: ignore[attr-defined]

    got: dict[str, bytes] = {}

    def on_store(event: evt.Event) -> int:
        got[event.request.AffectedSOPInstanceUID] = received_dataset(event)
        return 0

    ae = AE(ae_title="SCU")
    ae.acse_timeout = ae.dimse_timeout = 30
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(SecondaryCaptureImageStorage, ["1.2.840.10008.1.2.5"])
    assoc = ae.associate(
        *running_receiver.address,
        ae_title="OPENJIP",
        ext_neg=[build_role(SecondaryCaptureImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    assert assoc.is_established
    try:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        identifier.StudyInstanceUID = site_data.studies["ID1"]
        final = [
            s for s, _ in assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)
        ][-1]
        assert final.Status == 0x0000
        assert final.NumberOfCompletedSuboperations == 1
    finally:
        assoc.release()
        ae.shutdown()
    ((uid, data),) = got.items()
    assert data == dataset_bytes(site_data.files[uid].read_bytes())
