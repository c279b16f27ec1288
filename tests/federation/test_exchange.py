"""Publishing, pulling, approving between real sites over loopback HTTP; and every way a bundle
must be refused — each with a clear reason, an audit entry, and nothing changed at the receiver.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pydicom.data
import pytest
import yaml

from openjip.federation.bundle import bundle_id, make_bundle
from openjip.federation.canonical import canonical_json

REPO = Path(__file__).resolve().parents[2]
BODY_MASK_SPEC = Path(__file__).parent / "data" / "shared-body-mask.yaml"
CONVERT_SPEC = REPO / "dags" / "workflows" / "convert-to-nifti.yaml"
OTHER_DIGEST = "sha256:" + "cd" * 32


def published_and_pulled(a: Any, b: Any) -> list[Any]:
    """A publishes shared-body-mask; B pulls from A."""
    a.exchange.publish(BODY_MASK_SPEC)
    return b.exchange.pull("a")


def last_audit(site: Any) -> dict[str, Any]:
    return list(site.exchange.audit.entries())[-1]


def test_publish_pull_approve_writes_the_spec_with_its_origin(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    b.trust(a)

    results = published_and_pulled(a, b)

    assert [(r.workflow_id, r.outcome) for r in results] == [("shared-body-mask", "pending")]
    assert b.workflow_files() == []
    (pending,) = b.exchange.inbox.pending()
    path = b.exchange.approve(pending.bundle_id[:8])
    spec = yaml.safe_load(path.read_text())
    original = yaml.safe_load(BODY_MASK_SPEC.read_text())
    assert spec["steps"] == original["steps"]
    assert spec["origin"]["peer"] == "a"
    assert spec["origin"]["site_id"] == a.exchange.identity.site_id
    assert spec["origin"]["sequence"] == 1
    assert b.exchange.inbox.pending() == []
    events = [entry["event"] for entry in b.exchange.audit.entries()]
    assert events[-2:] == ["fetch", "approve"]
    assert b.exchange.audit.verify_chain() == []
    # Pulling again brings nothing new and changes nothing.
    assert [r.outcome for r in b.exchange.pull("a")] == ["unchanged"]


def test_auto_policy_needs_no_approval(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    b.trust(a, policy="auto")

    results = published_and_pulled(a, b)

    assert [r.outcome for r in results] == ["approved"]
    assert [p.name for p in b.workflow_files()] == ["shared-body-mask.yaml"]


def test_reject_drops_the_bundle_for_good(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    b.trust(a)
    published_and_pulled(a, b)
    (pending,) = b.exchange.inbox.pending()

    b.exchange.reject(pending.bundle_id)

    assert b.exchange.inbox.pending() == []
    assert [r.outcome for r in b.exchange.pull("a")] == ["unchanged"]
    assert b.workflow_files() == []
    assert "reject" in [entry["event"] for entry in b.exchange.audit.entries()]


def test_a_newer_version_replaces_the_approved_one(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    b.trust(a, policy="auto")
    published_and_pulled(a, b)
    published_and_pulled(a, b)
    spec = yaml.safe_load((b.home / "workflows" / "shared-body-mask.yaml").read_text())
    assert spec["origin"]["sequence"] == 2


def test_an_unknown_caller_is_refused(make_site: Any) -> None:
    a, c = make_site("a"), make_site("c")
    c.trust(a)  # c trusts a, but a does not know c
    a.exchange.publish(BODY_MASK_SPEC)

    (result,) = c.exchange.pull("a")

    assert result.outcome == "unreachable"
    assert "403" in result.message and "not a peer" in result.message
    assert c.workflow_files() == [] and c.exchange.inbox.pending() == []
    assert last_audit(c)["event"] == "pull-failed"
    a.service.refusals.flush()  # refusals are audited in one entry per interval
    assert last_audit(a)["event"] == "requests-refused"
    assert last_audit(a)["details"]["by_reason"] == {"unknown-peer": 1}


def _store_bundle(site: Any, bundle: dict[str, Any]) -> None:
    """Serve ``bundle`` from ``site`` as it is (bypassing publish's own checks)."""
    site.exchange.outbox.store(bundle)


def _resign(site: Any, bundle: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The bundle with ``changes`` to its body, properly signed by ``site``."""
    body = {**bundle["body"], **changes}
    return {"body": body, "signature": site.exchange.identity.sign(canonical_json(body))}


def _dicom_base64() -> str:
    path = pydicom.data.get_testdata_file("CT_small.dcm")
    return base64.b64encode(Path(str(path)).read_bytes()).decode()


def _tamper(case: str, a: Any, intruder: Any, bundle: dict[str, Any]) -> dict[str, Any] | bytes:
    """The bundle A serves in each refusal case."""
    spec = bundle["body"]["spec"]
    if case == "different-key":
        body = {**bundle["body"]}
        return {"body": body, "signature": intruder.exchange.identity.sign(canonical_json(body))}
    if case == "claims-other-publisher":
        key = intruder.exchange.identity.public_key
        body = {**bundle["body"], "publisher": {**bundle["body"]["publisher"], "public_key": key}}
        return {"body": body, "signature": intruder.exchange.identity.sign(canonical_json(body))}
    if case == "one-byte-altered":
        raw = canonical_json(bundle)
        position = raw.index(b"Thresholds")
        return raw[:position] + b"t" + raw[position + 1 :]
    if case == "operator-not-allowed":
        # A valid workflow whose operator exists but is not on B's allow-list.
        other = {**yaml.safe_load(CONVERT_SPEC.read_text()), "id": "shared-convert"}
        name, version = other["steps"][0]["operator"].split("@")
        pin = {**bundle["body"]["operators"][0], "name": name, "version": version}
        return _resign(a, bundle, spec=other, workflow_id=other["id"], operators=[pin])
    if case == "operator-digest-mismatch":
        operators = [{**op, "digest": OTHER_DIGEST} for op in bundle["body"]["operators"]]
        return _resign(a, bundle, operators=operators)
    if case == "oversized":
        return _resign(a, bundle, spec={**spec, "description": "x" * 300_000})
    if case == "dicom-payload":
        return _resign(a, bundle, spec={**spec, "description": _dicom_base64()[:4000]})
    if case == "dicom-json-bulk":
        header = {"7FE00010": {"vr": "OW", "InlineBinary": "AAAA"}}
        return _resign(a, bundle, spec={**spec, "description": json.dumps(header)})
    if case == "retired-format":
        return _resign(a, bundle, format="openjip-bundle/1")
    if case == "schema":
        broken = {key: value for key, value in spec.items() if key != "steps"}
        return _resign(a, bundle, spec=broken)
    if case == "foreign-path":
        params = {**spec["steps"][0].get("params", {}), "source": "s3://other-site/dicom/1.2.3/"}
        steps = [{**spec["steps"][0], "params": params}]
        return _resign(a, bundle, spec={**spec, "steps": steps})
    raise AssertionError(case)


REFUSALS = {
    "different-key": "bad-signature",
    "claims-other-publisher": "wrong-key",
    "one-byte-altered": "bad-signature",
    "operator-not-allowed": "operator-not-allowed",
    "operator-digest-mismatch": "operator-digest",
    "oversized": "oversized",
    "dicom-payload": "dicom-payload",
    "dicom-json-bulk": "dicom-payload",
    "schema": "schema",
    "retired-format": "format",
    "foreign-path": "foreign-path",
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_bad_bundles_are_refused_and_change_nothing(make_site: Any, case: str) -> None:
    a, b, intruder = make_site("a"), make_site("b"), make_site("intruder")
    a.trust(b)
    b.trust(a)
    bundle = a.exchange.publish(BODY_MASK_SPEC)
    served = _tamper(case, a, intruder, bundle)
    (a.exchange.outbox.directory / "shared-body-mask.json").unlink()
    if isinstance(served, bytes):
        (a.exchange.outbox.directory / "shared-body-mask.json").write_bytes(served)
    else:
        _store_bundle(a, served)
    workflows_before = b.workflow_files()

    (result,) = b.exchange.pull("a")

    assert result.outcome == "rejected", result
    entry = last_audit(b)
    assert entry["event"] == "verification-failed"
    assert entry["details"]["reason"] == REFUSALS[case], entry
    assert entry["details"]["message"]
    assert b.workflow_files() == workflows_before
    assert b.exchange.inbox.pending() == []


def test_replay_of_an_older_version_is_refused(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    b.trust(a, policy="auto")
    first = a.exchange.publish(BODY_MASK_SPEC)
    b.exchange.pull("a")
    published_and_pulled(a, b)
    accepted = (b.home / "workflows" / "shared-body-mask.yaml").read_bytes()

    _store_bundle(a, first)
    (result,) = b.exchange.pull("a")

    assert result.outcome == "rejected"
    assert last_audit(b)["details"]["reason"] == "replay"
    assert (b.home / "workflows" / "shared-body-mask.yaml").read_bytes() == accepted


def test_a_local_workflow_of_the_same_id_is_not_overwritten(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    b.trust(a, policy="auto")
    local = b.home / "workflows" / "shared-body-mask.yaml"
    local.parent.mkdir(parents=True)
    local.write_text(BODY_MASK_SPEC.read_text())

    (result,) = published_and_pulled(a, b)

    assert result.outcome == "rejected"
    assert last_audit(b)["details"]["reason"] == "shadowing"
    assert local.read_text() == BODY_MASK_SPEC.read_text()


def test_a_site_workflow_written_after_the_pull_is_not_overwritten(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    b.trust(a)
    published_and_pulled(a, b)
    (pending,) = b.exchange.inbox.pending()
    local = b.home / "workflows" / "my-own.yaml"
    local.parent.mkdir(parents=True)
    local.write_text(BODY_MASK_SPEC.read_text())  # a site-authored spec of the same id

    from openjip.federation.errors import FederationError

    with pytest.raises(FederationError, match="never replaces it"):
        b.exchange.approve(pending.bundle_id)
    assert b.workflow_files() == [local]
    assert last_audit(b)["event"] == "approve-refused"


def test_a_workflow_id_climbing_out_of_the_folder_is_refused(make_site: Any) -> None:
    """The attack of issue 15: an auto peer's bundle naming ``../../escape/evil``."""
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    b.trust(a, policy="auto")
    bundle = a.exchange.publish(BODY_MASK_SPEC)
    evil = _resign(a, bundle, workflow_id="../../escape/evil")

    # What B's pull does with every bundle a peer serves (a hostile peer serves anything).
    result = b.exchange.receive(b.exchange.peers.get("a"), canonical_json(evil))

    assert result.outcome == "rejected"
    assert last_audit(b)["details"]["reason"] == "workflow-id"
    assert list(b.home.parent.rglob("evil*")) == []
    assert b.workflow_files() == []


def test_a_bundle_whose_spec_shadows_a_project_workflow_is_refused(make_site: Any) -> None:
    """The attack of issue 15: ``zzz-shadow`` carrying ``spec.id: convert-to-nifti``."""
    convert = yaml.safe_load(CONVERT_SPEC.read_text())
    operator = convert["steps"][0]["operator"]
    a, b = make_site("a", also_allowed=(operator,)), make_site("b", also_allowed=(operator,))
    a.trust(b)
    b.trust(a, policy="auto")
    bundle = a.exchange.publish(BODY_MASK_SPEC)
    name, version = operator.split("@")
    pin = {**bundle["body"]["operators"][0], "name": name, "version": version}
    for workflow_id, reason in (("zzz-shadow", "workflow-id"), ("convert-to-nifti", "shadowing")):
        shadow = _resign(a, bundle, workflow_id=workflow_id, spec=convert, operators=[pin])

        result = b.exchange.receive(b.exchange.peers.get("a"), canonical_json(shadow))

        assert result.outcome == "rejected", workflow_id
        assert last_audit(b)["details"]["reason"] == reason
        assert b.workflow_files() == []


def test_bundle_ids_are_stable_and_signatures_cover_the_body(make_site: Any) -> None:
    a = make_site("a")
    spec = yaml.safe_load(BODY_MASK_SPEC.read_text())
    bundle = make_bundle(spec, [], a.exchange.identity, 7)
    assert bundle_id(bundle) == bundle_id(json.loads(canonical_json(bundle)))
    assert bundle["body"]["sequence"] == 7
    assert len(bundle["body"]["nonce"]) == 32
