"""Site identity on disk, peers, canonical JSON and the guard's DICOM detection."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pydicom.data
import pytest

from openjip.federation.canonical import canonical_json
from openjip.federation.errors import BundleRejected, FederationError
from openjip.federation.guard import check_no_foreign_paths, check_payload
from openjip.federation.identity import init_identity, load_identity, verify_signature
from openjip.federation.peers import PeerRegistry


def test_init_creates_a_private_key_only_the_owner_reads(tmp_path: Path) -> None:
    identity = init_identity(tmp_path / "federation", "site-a")
    key_file = tmp_path / "federation" / "site.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    loaded = load_identity(tmp_path / "federation")
    assert loaded.site_id == identity.site_id and loaded.name == "site-a"
    signature = loaded.sign(b"hello")
    assert verify_signature(identity.public_key, b"hello", signature)
    assert not verify_signature(identity.public_key, b"hellO", signature)


def test_init_refuses_to_replace_an_identity(tmp_path: Path) -> None:
    init_identity(tmp_path, "a")
    with pytest.raises(FederationError, match="exists already"):
        init_identity(tmp_path, "a")


def test_load_without_init_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FederationError, match="openjip federation init"):
        load_identity(tmp_path)


def test_peer_registry_validates_its_input(tmp_path: Path) -> None:
    key = init_identity(tmp_path / "b", "b").public_key
    peers = PeerRegistry(tmp_path / "peers.json")
    peers.add("b", "https://b.example:8443/", key)
    assert peers.get("b").url == "https://b.example:8443"
    with pytest.raises(FederationError, match="exists already"):
        peers.add("b", "https://b.example:8443", key)
    with pytest.raises(FederationError, match="belongs to peer"):
        peers.add("b2", "https://b.example:8443", key)
    with pytest.raises(FederationError, match="not an Ed25519 public key"):
        peers.add("c", "https://c.example", "not-a-key")
    with pytest.raises(FederationError, match="http"):
        peers.add("d", "ftp://d.example", init_identity(tmp_path / "d", "d").public_key)
    peers.remove("b")
    assert peers.entries() == []
    with pytest.raises(FederationError, match="no peer"):
        peers.remove("b")


def test_canonical_json_is_order_independent() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == canonical_json({"a": [1, "é"], "b": 1})
    assert canonical_json({"a": 1}) == b'{"a":1}'


def _dicom_bytes() -> bytes:
    return Path(str(pydicom.data.get_testdata_file("CT_small.dcm"))).read_bytes()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda: _dicom_bytes(), id="part10"),
        pytest.param(lambda: base64.b64encode(_dicom_bytes()), id="base64-part10"),
        pytest.param(
            lambda: b'{"00100010": {"vr": "PN"}, "7FE00010": {"vr": "OW", "BulkDataURI": "x"}}',
            id="dicom-json-bulk",
        ),
        pytest.param(
            lambda: base64.b64encode(b'{"7FE00010": {"vr": "OB", "InlineBinary": "AAAA"}}' * 4),
            id="base64-dicom-json",
        ),
    ],
)
def test_guard_refuses_dicom(payload: object) -> None:
    with pytest.raises(BundleRejected) as refused:
        check_payload(payload(), max_bytes=10**7)  # type: ignore[operator]
    assert refused.value.reason == "dicom-payload"


def test_guard_lets_a_workflow_document_through() -> None:
    check_payload(b'{"id": "ct-body-mask", "description": "CT body mask"}', max_bytes=1000)
    with pytest.raises(BundleRejected, match="exceeds"):
        check_payload(b"x" * 1001, max_bytes=1000)


@pytest.mark.parametrize(
    "value", ["s3://bucket/dicom/1.2.3/", "minio://x/y", "dicom/1.2.840.1/1.2.3/", "runs/dag/run/"]
)
def test_specs_cannot_name_object_store_paths(value: str) -> None:
    with pytest.raises(BundleRejected, match="object-store location"):
        check_no_foreign_paths({"id": "x", "steps": [{"params": {"p": value}}]})
