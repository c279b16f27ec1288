"""DICOM TLS (PS3.15 Annex B) with dcmtk ``+tls`` both ways: dcmtk into the receiver's TLS
port (client certificates verified), a plain or untrusted client refused, and the receiver's
C-MOVE sub-operations into a TLS-only dcmtk ``storescp``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from qr_peers import NetNamespace, dcmtk

CT = Path(str(get_testdata_file("CT_small.dcm")))


def _tls(cert: Path, key: Path, ca: Path) -> list[str]:
    """dcmtk's TLS options: our key and certificate, the CA we trust."""
    return ["+tls", str(key), str(cert), "+cf", str(ca)]


@pytest.fixture
def tls_receiver(receiver_factory: Any, pki: Any) -> Any:
    """A receiver whose port speaks TLS only and wants client certificates of the test CA."""
    return receiver_factory(tls_cert=pki.site_cert, tls_key=pki.site_key, tls_ca=pki.ca)


def _stored(receiver: Any) -> list[Path]:
    objects = receiver.settings.storage_path / "dicom"
    return sorted(objects.rglob("*.dcm")) if objects.exists() else []


@pytest.mark.parametrize("workers", [1, 2])
def test_storescu_over_tls_with_a_client_certificate(
    receiver_factory: Any, pki: Any, workers: int
) -> None:
    """In one process and with connections handed to worker processes."""
    tls_receiver = receiver_factory(
        tls_cert=pki.site_cert, tls_key=pki.site_key, tls_ca=pki.ca, workers=workers
    )
    host, port = tls_receiver.address
    tls = _tls(pki.peer_cert, pki.peer_key, pki.ca)
    echo = dcmtk("echoscu", *tls, "-aec", "OPENJIP", host, str(port))
    assert echo.returncode == 0, echo.stdout + echo.stderr
    run = dcmtk("storescu", "-v", *tls, "-aec", "OPENJIP", host, str(port), str(CT))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Received Store Response (Success)" in run.stdout + run.stderr
    assert len(_stored(tls_receiver)) == 1


def test_plain_client_refused_by_the_tls_port(tls_receiver: Any, pki: Any) -> None:
    host, port = tls_receiver.address
    plain = dcmtk("storescu", "-aec", "OPENJIP", host, str(port), str(CT))
    assert plain.returncode != 0
    assert _stored(tls_receiver) == []
    # The port still serves TLS clients afterwards.
    tls = _tls(pki.peer_cert, pki.peer_key, pki.ca)
    assert dcmtk("echoscu", *tls, "-aec", "OPENJIP", host, str(port)).returncode == 0


def test_client_certificate_of_another_ca_refused(tls_receiver: Any, pki: Any) -> None:
    host, port = tls_receiver.address
    untrusted = _tls(pki.stranger_cert, pki.stranger_key, pki.ca)
    run = dcmtk("storescu", *untrusted, "-aec", "OPENJIP", host, str(port), str(CT))
    assert run.returncode != 0
    assert _stored(tls_receiver) == []


def test_tls_needs_certificate_and_key_together(receiver_factory: Any, pki: Any) -> None:
    from openjip.access.tls import TLSConfigError

    with pytest.raises(TLSConfigError, match="OPENJIP_RECEIVER__TLS_KEY"):
        receiver_factory(tls_cert=pki.site_cert)


def test_c_move_sub_operations_over_tls(
    ingest: Any, pki: Any, tmp_path: Path, openjip_home: Path
) -> None:
    """movescu (which has no TLS) asks two receiver processes for a study; the receiver sends
    it to a TLS-only storescp, presenting its own certificate and verifying storescp's."""
    ingest([CT])
    netns = NetNamespace()
    try:
        received = tmp_path / "storescp"
        received.mkdir()
        netns.start(
            "/usr/bin/storescp", *_tls(pki.peer_cert, pki.peer_key, pki.ca),
            "-aet", "STORESCP", "-od", str(received), "11113",
            log=tmp_path / "storescp.log",
        )  # fmt: skip
        env = {
            "OPENJIP_HOME": str(openjip_home),
            "OPENJIP_RECEIVER__PORT": "11112",
            "OPENJIP_RECEIVER__WORKERS": "2",
            "OPENJIP_RECEIVER__TLS_CERT": str(pki.site_cert),
            "OPENJIP_RECEIVER__TLS_KEY": str(pki.site_key),
            "OPENJIP_RECEIVER__TLS_CA": str(pki.ca),
            "OPENJIP_RECEIVER__TLS_LISTEN": "false",
            "OPENJIP_RECEIVER__KNOWN_AES": json.dumps(
                {
                    "MOVESCU": {"allow": ["echo", "move"]},
                    "STORESCP": {"host": "127.0.0.1", "port": 11113, "tls": True, "allow": []},
                }
            ),
        }
        netns.start(
            sys.executable, "-m", "openjip.receiver", log=tmp_path / "receiver.log", env=env
        )
        tls = _tls(pki.peer_cert, pki.peer_key, pki.ca)
        netns.wait_for_echo(11112, "OPENJIP")
        _wait_for_tls_echo(netns, tls, 11113, "STORESCP")
        study = dcmread(CT, stop_before_pixels=True).StudyInstanceUID
        run = netns.run(
            "/usr/bin/movescu", "-v", "-S", "-aet", "MOVESCU", "-aec", "OPENJIP",
            "-aem", "STORESCP", "-k", "QueryRetrieveLevel=STUDY",
            "-k", f"StudyInstanceUID={study}", "127.0.0.1", "11112",
        )  # fmt: skip
        output = run.stdout + run.stderr
        assert "Received Final Move Response (Success)" in output, (
            output + (tmp_path / "receiver.log").read_text()
        )
        assert len(list(received.iterdir())) == 1
    finally:
        netns.close()


def _wait_for_tls_echo(netns: NetNamespace, tls: list[str], port: int, called_ae: str) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = netns.run(
            "/usr/bin/echoscu", "-to", "5", *tls, "-aec", called_ae, "127.0.0.1", str(port)
        )
        if run.returncode == 0:
            return
        time.sleep(0.3)
    raise TimeoutError(f"no TLS C-ECHO answer on port {port}: {os.linesep}{run.stdout}{run.stderr}")


def test_openjip_send_over_tls_to_storescp(pki: Any, tmp_path: Path) -> None:
    """``openjip send --tls-*`` into a TLS-only dcmtk storescp that wants a client certificate;
    without our certificate, or trusting another CA, it fails with exit code 1."""
    openjip = str(Path(sys.executable).with_name("openjip"))
    netns = NetNamespace()
    try:
        received = tmp_path / "storescp"
        received.mkdir()
        netns.start(
            "/usr/bin/storescp", *_tls(pki.peer_cert, pki.peer_key, pki.ca),
            "-aet", "STORESCP", "-od", str(received), "11113",
            log=tmp_path / "storescp.log",
        )  # fmt: skip
        tls = _tls(pki.site_cert, pki.site_key, pki.ca)
        _wait_for_tls_echo(netns, tls, 11113, "STORESCP")
        target = ("--host", "127.0.0.1", "--port", "11113", "--called-ae", "STORESCP")
        sent = netns.run(
            openjip, "send", str(CT), *target,
            "--tls-ca", str(pki.ca), "--tls-cert", str(pki.site_cert),
            "--tls-key", str(pki.site_key),
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert len(list(received.iterdir())) == 1
        no_certificate = netns.run(openjip, "send", str(CT), *target, "--tls-ca", str(pki.ca))
        assert no_certificate.returncode == 1
        assert "TLS" in no_certificate.stderr
        wrong_ca = netns.run(
            openjip, "send", str(CT), *target, "--tls-ca", str(pki.stranger_cert),
            "--tls-cert", str(pki.site_cert), "--tls-key", str(pki.site_key),
        )  # fmt: skip
        assert wrong_ca.returncode == 1
        assert "Traceback" not in wrong_ca.stderr
        assert len(list(received.iterdir())) == 1
    finally:
        netns.close()
