"""Pixel-cleaning rules: an ultrasound image (quarantined for its burned-in text) that a rule
of its manufacturer, model and size covers is written with the rule's rectangles black in every
sample and every other pixel as it was; without a matching rule, or with compressed pixels, it
stays quarantined."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from openjip.config.deid import PixelRule
from openjip.deid.instance import Quarantined, deidentify_instance, read_source
from openjip.deid.profile import build_profile
from openjip.deid.pseudonyms import Pseudonyms
from openjip.deid.walker import Deidentifier

from .conftest import SECRET

US = Path(str(get_testdata_file("US1_UNCR.dcm")))  # G.E. LOGIQ 700, 480x640 RGB, native
US_COMPRESSED = Path(str(get_testdata_file("US1_J2KR.dcm")))
MULTIFRAME_SC = Path(str(get_testdata_file("SC_rgb_2frame.dcm")))
LOGIQ = {"Manufacturer": "G.E. Medical Systems", "ManufacturerModelName": "LOGIQ 700"}
BANNER = (0, 0, 640, 40)  # the top band, where such scanners print the patient's name


def _with(*rules: PixelRule) -> Deidentifier:
    return Deidentifier(build_profile(), Pseudonyms(SECRET), pixel_rules=rules)


def test_a_matching_rule_cleans_its_rectangles_and_nothing_else() -> None:
    rule = PixelRule(
        match={**LOGIQ, "Rows": 480, "Columns": 640}, regions=[BANNER, (600, 400, 40, 80)]
    )
    done = deidentify_instance(read_source(US), _with(rule))
    source, output = pydicom.dcmread(US), pydicom.dcmread(io.BytesIO(done.data))
    before, after = source.pixel_array, output.pixel_array
    assert (after[:40, :, :] == 0).all() and (after[400:, 600:, :] == 0).all()
    assert before[:40].any()  # there was something to clean
    mask = after.copy()
    mask[:40], mask[400:, 600:] = before[:40], before[400:, 600:]
    assert (mask == before).all()  # every other pixel as it was
    assert output.BurnedInAnnotation == "NO"
    codes = [item.CodeValue for item in output.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113101"]  # Basic Profile, Clean Pixel Data
    assert done.result.counts[("PixelData", "cleaned")] == 1
    assert ("PixelData", "kept") not in done.result.counts


def test_every_frame_is_cleaned() -> None:
    rule = PixelRule(match={"Rows": 100, "Columns": 100}, regions=[(10, 10, 20, 20)])
    done = deidentify_instance(read_source(MULTIFRAME_SC), _with(rule))
    frames = pydicom.dcmread(io.BytesIO(done.data)).pixel_array
    assert frames.shape[0] == 2 and (frames[:, 10:30, 10:30] == 0).all()


@pytest.mark.parametrize(
    ("path", "rule", "reason"),
    [
        (US, PixelRule(match={**LOGIQ, "Rows": 512}, regions=[BANNER]), "modality US"),
        (US_COMPRESSED, PixelRule(match=LOGIQ, regions=[BANNER]), "compressed pixel data"),
    ],
    ids=["no rule of its size", "compressed"],
)
def test_otherwise_it_stays_quarantined(path: Path, rule: PixelRule, reason: str) -> None:
    with pytest.raises(Quarantined, match=reason):
        deidentify_instance(read_source(path), _with(rule))
