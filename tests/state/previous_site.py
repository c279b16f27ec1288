"""Fill a site with openjip 0.1.0 (commit 14f6e6b): run by the previous version's interpreter
in test_local_upgrade.py, never imported by the current code's tests.

Usage: python previous_site.py HOME PEER_HOME SPEC; prints a JSON summary of what it made.
A CT series received by the old receiver over C-STORE, a step output of the old local runner
under runs/, a federation identity, and a workflow published by a peer, pulled and approved.
The previous version has no users.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import yaml
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

import openjip
from openjip.config import Settings
from openjip.config.settings import FederationSettings, ReceiverSettings
from openjip.federation.exchange import Exchange
from openjip.federation.service import FederationService
from openjip.phantom import write_ct_series
from openjip.receiver import ReceiverService
from openjip.runner import StepRequest, open_runner

COUNTER = """\
name: file-counter
version: 1.0.0
description: Writes how many input files it saw.
image: example.org/file-counter:1.0.0
command: [python, main.py]
input: {kind: dicom-series}
output: {kind: json}
"""
COUNTER_MAIN = """\
import json
from openjip import sdk

def main():
    for item in sdk.inputs():
        (item.output_dir() / "count.json").write_text(json.dumps({"files": len(item.files())}))

sdk.run(main)
"""


def receive_ct(settings: Settings, folder: Path) -> list[str]:
    site = settings.model_copy(update={"receiver": ReceiverSettings(port=0, workers=1)})
    receiver = ReceiverService(site)
    receiver.start()
    ae = AE(ae_title="OLDSCU")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(*receiver.address, ae_title="OPENJIP")
    assert assoc.is_established
    uids = []
    for path in write_ct_series(folder, slices=6, rows=32, columns=32):
        dataset = dcmread(path)
        assert assoc.send_c_store(dataset).Status == 0
        uids.append(str(dataset.SeriesInstanceUID))
    assoc.release()
    receiver.stop()
    return sorted(set(uids))


def run_step(settings: Settings, series_uid: str) -> list[str]:
    folder = settings.home_dir / "operators" / "file-counter"
    folder.mkdir(parents=True)
    (folder / "operator.yaml").write_text(COUNTER)
    (folder / "main.py").write_text(textwrap.dedent(COUNTER_MAIN))
    request = StepRequest(
        dag_id="count",
        run_id="manual__2026-01-01T00:00:00+00:00",
        step="count",
        operator="file-counter@1.0.0",
        series_uids=[series_uid],
    )
    return list(open_runner(settings).run(request).output_keys)


def approve_peer_workflow(home: Path, peer_home: Path, spec: Path) -> tuple[str, str]:
    """The peer publishes ``spec`` as ``peer-body-mask``; this site pulls and approves it."""
    document = yaml.safe_load(spec.read_text())
    document["id"] = "peer-body-mask"
    renamed = peer_home / "peer-body-mask.yaml"
    peer_home.mkdir(parents=True)
    renamed.write_text(yaml.safe_dump(document))
    operators = {step["operator"]: "sha256:" + "ab" * 32 for step in document["steps"]}
    settings = FederationSettings(
        host="127.0.0.1", port=0, pull_interval_seconds=0, allowed_operators=operators
    )
    peer, site = Exchange(peer_home, settings), Exchange(home, settings)
    peer.init("peer-b")
    identity = site.init("site-a")
    service = FederationService(peer, log_level="warning")
    service.start()
    try:
        site.peers.add("peer-b", service.url, peer.identity.public_key, "manual")
        # The peer serves its bundles only to sites it trusts (site A serves nothing here).
        peer.peers.add("site-a", "http://127.0.0.1:9", identity.public_key, "manual")
        peer.publish(renamed)
        pulled = site.pull("peer-b")
        assert [r.outcome for r in pulled] == ["pending"], pulled
        (pending,) = site.inbox.pending()
        approved = site.approve(pending.bundle_id[:8])
    finally:
        service.stop()
    return identity.site_id, str(approved)


def main() -> None:
    home, peer_home, spec = (Path(argument) for argument in sys.argv[1:4])
    settings = Settings(home=home)
    [series] = receive_ct(settings, home.parent / "old-ct")
    outputs = run_step(settings, series)
    site_id, approved = approve_peer_workflow(home, peer_home, spec)
    summary = {
        "openjip": openjip.__version__,
        "code": openjip.__file__,
        "series": series,
        "outputs": outputs,
        "site_id": site_id,
        "approved": approved,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
