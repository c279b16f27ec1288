"""De-identification policies per project, end to end with dcmtk: what a research project's AE
sends is stored de-identified only (the originals never reach the store; an instance with
suspected burned-in text is refused), and a C-MOVE out of a project that de-identifies on export
delivers de-identified instances to dcmtk storescp. The receiver, storescu, movescu and
storescp share a private network namespace (storescp listens on every interface)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from qr_peers import NetNamespace

from openjip.config import Settings
from openjip.deid.pseudonyms import Pseudonyms, site_secret
from openjip.index import Query, open_index

RECEIVER_PORT, STORESCP_PORT = 11112, 11113
KNOWN_AES = {
    "RESEARCH": {"allow": ["echo", "store"], "projects": ["research"]},
    "SHARER": {"allow": ["echo", "store"], "projects": ["share"]},
    "MOVER": {"allow": ["echo", "find", "move"], "projects": ["share", "research"]},
    "STORESCP": {"host": "127.0.0.1", "port": STORESCP_PORT, "allow": ["echo"]},
}
POLICIES = {
    "research": {"on_ingest": True, "options": ["retain-longitudinal-modified-dates"]},
    "share": {"on_export": True},
}
SECONDARY_CAPTURE = Path(str(get_testdata_file("SC_rgb.dcm")))


@pytest.fixture
def site(netns: NetNamespace, openjip_home: Path, tmp_path: Path) -> Settings:
    """A receiver in the namespace with the two projects' policies, and storescp beside it."""
    received = tmp_path / "storescp"
    received.mkdir()
    netns.start(
        "/usr/bin/storescp", "+xa", "-aet", "STORESCP", "-od", str(received), str(STORESCP_PORT),
        log=tmp_path / "storescp.log",
    )  # fmt: skip
    env = {
        "OPENJIP_HOME": str(openjip_home),
        "OPENJIP_RECEIVER__PORT": str(RECEIVER_PORT),
        "OPENJIP_RECEIVER__WORKERS": "1",
        "OPENJIP_RECEIVER__KNOWN_AES": json.dumps(KNOWN_AES),
        "OPENJIP_DEID__PROJECTS": json.dumps(POLICIES),
    }
    netns.start(sys.executable, "-m", "openjip.receiver", log=tmp_path / "receiver.log", env=env)
    netns.wait_for_echo(STORESCP_PORT, "STORESCP")
    netns.wait_for_echo(RECEIVER_PORT, "OPENJIP")
    return Settings(home=openjip_home)


def _send(netns: NetNamespace, calling_ae: str, *paths: Path) -> str:
    run = netns.run(
        "/usr/bin/storescu", "-v", "-aet", calling_ae, "-aec", "OPENJIP", "127.0.0.1",
        str(RECEIVER_PORT), *map(str, paths),
    )  # fmt: skip
    return run.stdout + run.stderr


def test_a_research_project_stores_de_identified_instances_only(
    netns: NetNamespace, site: Settings, ct_phantom: list[Path], tmp_path: Path
) -> None:
    original = pydicom.dcmread(ct_phantom[0])
    _send(netns, "RESEARCH", *ct_phantom)
    assert "Error" not in _send(netns, "RESEARCH", *ct_phantom[:1])  # a re-send is the same
    assert "Error: CannotUnderstand" in _send(netns, "RESEARCH", SECONDARY_CAPTURE)
    log = (tmp_path / "receiver.log").read_text()
    assert "refused with 0xC000: not stored: secondary capture (burned-in text" in log

    pseudonyms = Pseudonyms(site_secret(site.home_dir, site.deid_secret_path))
    index = open_index(site)
    [series] = index.find_series(Query())
    assert series.projects == ["research"]
    assert series.SeriesInstanceUID == pseudonyms.uid(original.SeriesInstanceUID)
    assert series.PatientID == pseudonyms.patient(str(original.PatientID))
    assert len(index.find_instances(Query())) == len(ct_phantom)  # the SC was refused
    index.close()
    # No byte of the store holds the originals' identity: they never reached it.
    stored = [p for p in site.storage_path.rglob("*") if p.is_file()]
    for path in stored:  # the instances and the study's project marker (named by its new UID)
        data = path.read_bytes()
        assert str(original.PatientName).encode() not in data
        assert original.StudyInstanceUID.encode() not in data
        assert original.StudyInstanceUID not in str(path)
    instances = [p for p in stored if p.suffix == ".dcm"]
    assert len(instances) == len(ct_phantom)
    for path in instances:
        dataset = pydicom.dcmread(path)
        assert dataset.PatientIdentityRemoved == "YES"
        assert dataset.LongitudinalTemporalInformationModified == "MODIFIED"
        assert dataset.StudyDate != original.StudyDate


def test_c_move_out_of_a_project_with_an_export_policy_sends_de_identified_instances(
    netns: NetNamespace, site: Settings, ct_phantom: list[Path], tmp_path: Path
) -> None:
    original = pydicom.dcmread(ct_phantom[0])
    _send(netns, "SHARER", *ct_phantom)
    index = open_index(site)
    [series] = index.find_series(Query())
    assert series.SeriesInstanceUID == original.SeriesInstanceUID  # stored as received
    index.close()

    run = netns.run(
        "/usr/bin/movescu", "-v", "-S", "-aet", "MOVER", "-aec", "OPENJIP", "-aem", "STORESCP",
        "-k", "QueryRetrieveLevel=SERIES",
        "-k", f"StudyInstanceUID={original.StudyInstanceUID}",
        "-k", f"SeriesInstanceUID={original.SeriesInstanceUID}",
        "127.0.0.1", str(RECEIVER_PORT),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr

    pseudonyms = Pseudonyms(site_secret(site.home_dir, site.deid_secret_path))
    received = sorted((tmp_path / "storescp").iterdir())
    assert len(received) == len(ct_phantom)
    sources = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in ct_phantom}
    by_new_uid = {pseudonyms.uid(uid): source for uid, source in sources.items()}
    for path in received:
        data = path.read_bytes()
        assert str(original.PatientName).encode() not in data
        dataset = pydicom.dcmread(path)
        assert dataset.PatientIdentityRemoved == "YES"
        assert dataset.PatientID == pseudonyms.patient(str(original.PatientID))
        assert dataset.SeriesInstanceUID == pseudonyms.uid(original.SeriesInstanceUID)
        # Pixel data byte for byte the stored instance's.
        assert dataset.PixelData == by_new_uid[dataset.SOPInstanceUID].PixelData
