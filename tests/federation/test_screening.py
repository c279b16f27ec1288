"""Patient data never crosses the border (issue 13, 4d): a workflow spec carrying an indexed
patient's name or ID — in its description, a param default or a step — is refused at publish
and at pull, with the reason (not the value) in the audit log; date and ID patterns in free text
are refused too; and without a screen, nothing passes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from openjip.config import Settings
from openjip.federation.errors import FederationError
from openjip.index import InstanceRecord, open_index

SPEC = Path(__file__).parent / "data" / "shared-body-mask.yaml"
PATIENT = {"PatientName": "Sample^Wilhelmina", "PatientID": "PAT-0042-XQ"}


def _index_patient(home: Path) -> None:
    index = open_index(Settings(home=home))
    index.upsert_instances(
        [
            InstanceRecord(
                SOPInstanceUID="1.2.826.0.1.3680043.10.99.1.1",
                SeriesInstanceUID="1.2.826.0.1.3680043.10.99.1",
                StudyInstanceUID="1.2.826.0.1.3680043.10.99",
                AccessionNumber="ACC77Z",
                PatientBirthDate="19610312",
                Modality="CT",
                **PATIENT,
            )
        ]
    )
    index.close()


def _spec_with(where: str, value: str, directory: Path) -> Path:
    spec = yaml.safe_load(SPEC.read_text())
    carrying = copy.deepcopy(spec)
    if where == "description":
        carrying["description"] = f"Validated on the scans of {value} last spring."
    elif where == "params default":
        carrying["params"]["target"] = {
            "type": "string",
            "title": "Structure",
            "default": value,
        }
    elif where == "step":
        carrying["steps"][0]["description"] = f"reviewed with {value}"
    path = directory / f"carrying-{where.replace(' ', '-')}.yaml"
    path.write_text(yaml.safe_dump(carrying))
    return path


def _last(site: Any, event: str) -> dict[str, Any]:
    return [entry for entry in site.exchange.audit.entries() if entry["event"] == event][-1]


PLACES = ["description", "params default", "step"]
VALUES = {"name": "Wilhelmina Sample", "id": "PAT-0042-XQ"}


@pytest.mark.parametrize("where", PLACES)
@pytest.mark.parametrize("what", sorted(VALUES))
def test_a_spec_carrying_an_indexed_patient_is_refused_at_publish(
    make_site: Any, tmp_path: Path, where: str, what: str
) -> None:
    _index_patient(tmp_path / "a")
    a = make_site("a")
    spec = _spec_with(where, VALUES[what], tmp_path)

    with pytest.raises(FederationError, match="carries patient data"):
        a.exchange.publish(spec)

    entry = _last(a, "publish-refused")
    assert entry["details"]["reason"] == "patient-data"
    kind = "PatientName" if what == "name" else "PatientID"
    assert f"{kind} of an indexed patient" in entry["details"]["message"]
    assert a.exchange.outbox.summaries() == []
    # The audit log says where and what kind, never the value it kept in.
    log = a.exchange.audit.path.read_text()
    assert "Wilhelmina" not in log and "PAT-0042-XQ" not in log


@pytest.mark.parametrize("where", PLACES)
@pytest.mark.parametrize("what", sorted(VALUES))
def test_a_spec_carrying_an_indexed_patient_is_refused_at_pull(
    make_site: Any, tmp_path: Path, where: str, what: str
) -> None:
    _index_patient(tmp_path / "b")  # the patient is B's: A publishes, B refuses
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    b.trust(a, policy="auto")
    a.exchange.publish(_spec_with(where, VALUES[what], tmp_path))

    (result,) = b.exchange.pull("a")

    assert result.outcome == "rejected" and "patient-data" in result.message
    entry = _last(b, "verification-failed")
    assert entry["details"]["reason"] == "patient-data"
    assert b.workflow_files() == [] and b.exchange.inbox.pending() == []
    assert "Wilhelmina" not in b.exchange.audit.path.read_text()


@pytest.mark.parametrize(
    "text", ["born 12.03.1961", "scanned on 2023-11-07", "MRN 0042137", "case 18273645"]
)
def test_dates_and_id_like_numbers_in_free_text_are_refused(
    make_site: Any, tmp_path: Path, text: str
) -> None:
    a = make_site("a")  # nothing indexed: the patterns alone refuse it
    with pytest.raises(FederationError, match="in free text"):
        a.exchange.publish(_spec_with("description", text, tmp_path))


def test_the_own_bundles_are_screened_again_when_served(make_site: Any, tmp_path: Path) -> None:
    a, b = make_site("a"), make_site("b")
    a.trust(b)
    b.trust(a)
    a.exchange.publish(_spec_with("step", VALUES["name"], tmp_path))
    _index_patient(tmp_path / "a")  # the patient arrives at A after the publication

    (result,) = b.exchange.pull("a")

    assert result.outcome == "unreachable" and "451" in result.message
    assert _last(a, "serve-refused")["details"]["reason"] == "patient-data"


def test_without_a_screen_nothing_crosses(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b", web=False)
    a.trust(b)
    b.trust(a, policy="auto")
    a.exchange.publish(SPEC)

    (result,) = b.exchange.pull("a")
    with pytest.raises(FederationError, match="cannot be screened"):
        b.exchange.publish(SPEC)

    assert result.outcome == "rejected"
    assert _last(b, "verification-failed")["details"]["reason"] == "screen-unavailable"
    assert b.workflow_files() == []
