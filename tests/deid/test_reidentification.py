"""The re-identification table exists only for a project that asks for one: ingest into it keeps
who each pseudonym is, sealed (nothing identifying in clear, 0600 in a 0700 folder), and
``openjip reidentify`` opens it for the site's administrator, audited; another project keeps
none, and another secret opens nothing."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from openjip.access import AccessAudit
from openjip.cli.main import app
from openjip.config import Settings
from openjip.deid.policy import ProjectPolicies
from openjip.deid.reidentification import ReidentificationTable, table_path
from openjip.index import open_index
from openjip.ingest import Ingestor
from openjip.storage import open_store

CT = Path(str(get_testdata_file("CT_small.dcm")))
POLICIES = {
    "research": {"on_ingest": True, "reidentification": True},
    "anonymous": {"on_ingest": True},
}
runner = CliRunner()


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch, openjip_home: Path) -> Settings:
    monkeypatch.setenv("OPENJIP_DEID__PROJECTS", json.dumps(POLICIES))
    settings = Settings()
    index = open_index(settings)
    ingestor = Ingestor(open_store(settings), index, policy=ProjectPolicies.for_site(settings))
    ingestor.ingest_file(CT, source_ae="TEST", projects=["research"])
    ingestor.ingest_file(CT, source_ae="TEST", projects=["anonymous"])
    index.close()
    return settings


def test_only_the_project_that_asks_keeps_a_sealed_table(site: Settings) -> None:
    original = pydicom.dcmread(CT)
    path = table_path(site.home_dir, "research")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert str(original.PatientID) not in text and "CompressedSamples" not in text
    assert not table_path(site.home_dir, "anonymous").exists()
    assert len(text.splitlines()) == 1


def test_reidentify_opens_it_and_is_audited(site: Settings) -> None:
    original = pydicom.dcmread(CT)
    [line] = table_path(site.home_dir, "research").read_text().splitlines()
    pseudonym = json.loads(line)["pseudonym"]

    result = runner.invoke(app, ["reidentify", pseudonym, "--project", "research", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"PatientID": str(original.PatientID), "PatientName": str(original.PatientName)}
    ]
    [entry] = [
        e for e in AccessAudit(site.access_audit_path).entries() if e["action"] == "reidentify"
    ]
    assert entry["result"] == "allowed" and pseudonym in entry["detail"]
    assert entry["surface"] == "cli"


def test_no_table_no_answer_and_another_secret_opens_nothing(site: Settings) -> None:
    [line] = table_path(site.home_dir, "research").read_text().splitlines()
    pseudonym = json.loads(line)["pseudonym"]
    refused = runner.invoke(app, ["reidentify", pseudonym, "--project", "anonymous"])
    assert refused.exit_code == 1 and "keeps no re-identification table" in refused.output
    unknown = runner.invoke(app, ["reidentify", "P000000000000000", "--project", "research"])
    assert unknown.exit_code == 1 and "not in the table" in unknown.output
    other = ReidentificationTable(table_path(site.home_dir, "research"), b"another-secret")
    with pytest.raises(ValueError, match="does not open"):
        other.lookup(pseudonym)
