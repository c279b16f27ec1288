"""One walker over every depth of a dataset: decide each element's action, then apply it.

Deciding first (a list of decisions) lets the same walk feed cleaning and the report's check
with the values about to go. Inside a sequence the profile removes or empties, everything is
gone with it; inside one it replaces with dummies (D) or cleans (C) — an SR's Content Sequence,
Graphic Annotation Sequence — the free-text, name and date values get that action too, while
codes (which carry the document's structure, not the patient) and listed attributes keep
their own rows.
"""

from __future__ import annotations

import datetime
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from openjip.config.deid import PixelRule
from openjip.deid.identifying import TEXT_VRS, identifying_values, names_in_text
from openjip.deid.profile import METHOD_CODES, Action, Profile
from openjip.deid.pseudonyms import Pseudonyms

PIXEL_DATA = 0x7FE00010
PATIENT_ID, PATIENT_NAME = 0x00100020, 0x00100010
# Code Value, Coding Scheme Designator and Version, Code Meaning, Long and URN Code Value.
CODE_TAGS = frozenset({0x00080100, 0x00080102, 0x00080103, 0x00080104, 0x00080119, 0x00080120})
SCRUBBED_VRS = TEXT_VRS - {"AE", "CS", "UI", "UR"} | {"UN"}
DUMMIES = {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000D"}
DUMMY_TEXT = "ANONYMIZED"
FREE_TEXT_VRS = frozenset({"ST", "LT", "UT", "UC"})
CLEAN_REPLACES = frozenset({"DA", "DT", "PN", "UI"}) | FREE_TEXT_VRS
OUTCOMES = {
    Action.KEEP: "kept",
    Action.REMOVE: "removed",
    Action.EMPTY: "emptied",
    Action.DUMMY: "replaced",
    Action.CLEAN: "cleaned",
    Action.UID: "remapped",
    Action.WALK: "kept",
}
OVERLAY_DATA, REPEATING_GROUP = 0x60003000, 0xFF00FFFF


@dataclass
class Decision:
    parent: Dataset
    element: DataElement
    action: Action
    applied: bool = True
    """False below a sequence that goes as a whole (decided only for the check)."""


@dataclass
class InstanceResult:
    """What happened to one instance: per attribute and outcome, how often."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    identifying: set[str] = field(default_factory=set)


def _name(element: DataElement) -> str:
    return element.keyword or f"({element.tag.group:04X},{element.tag.element:04X})"


def _changes_value(decision: Decision) -> bool:
    """Whether the source value is gone from the output. Cleaning replaces names, dates and
    UIDs; free text it keeps, less the identifying values of the other attributes (so a
    cleaned description is not itself searched for); times of day survive a whole-day shift."""
    if decision.action is Action.CLEAN:
        return decision.element.VR in CLEAN_REPLACES
    return decision.action not in (Action.KEEP, Action.WALK)


class Deidentifier:
    """Applies a profile with a site's pseudonyms; ``safe_private`` is the allow-list of
    (private creator, group, element byte) kept under Retain Safe Private, ``pixel_rules`` the
    site's pixel-cleaning rules (:mod:`openjip.deid.pixels`)."""

    def __init__(
        self,
        profile: Profile,
        pseudonyms: Pseudonyms,
        safe_private: frozenset[tuple[str, int, int]] = frozenset(),
        pixel_rules: Sequence[PixelRule] = (),
    ) -> None:
        self.profile = profile
        self.pseudonyms = pseudonyms
        self.safe_private = safe_private
        self.pixel_rules = tuple(pixel_rules)

    def _kept_on_purpose(self, decision: Decision) -> bool:
        """Kept because the table has no row for it (Manufacturer...) or a chosen option keeps
        it (Retain UIDs keeps UIDs that embed the acquisition date): what is inside such a
        value is no leak. A Basic Profile row broken into K does not count: it must fail the
        check."""
        tag = decision.element.tag
        if tag.is_private:
            return False
        if decision.action is Action.CLEAN and decision.element.VR == "TM":
            return True  # times of day stay under a whole-day date shift
        return self.profile.action(int(tag)) is None or int(tag) in self.profile.kept_by_option

    def _private_action(self, dataset: Dataset, element: DataElement) -> Action:
        if self.profile.private in (Action.REMOVE, Action.KEEP):
            return self.profile.private
        if element.tag.is_private_creator:  # Retain Safe Private: creators name vendors only
            return Action.KEEP
        creator_tag = (element.tag.group << 16) | (element.tag.element >> 8)
        creator = dataset.get(creator_tag)
        key = (str(creator.value) if creator else "", element.tag.group, element.tag.element & 0xFF)
        return Action.KEEP if key in self.safe_private else Action.REMOVE

    def decide(
        self,
        dataset: Dataset,
        sop_class: str | None,
        inherited: Action | None = None,
        applied: bool = True,
    ) -> Iterator[Decision]:
        """Every element of ``dataset`` at every depth with its action; ``sop_class`` is the
        instance's at the top level (X/Z rows depend on its IOD), None in items."""
        for element in list(dataset):
            tag = int(element.tag)
            if element.tag.is_private:
                action = self._private_action(dataset, element)
            elif inherited is Action.REMOVE:
                action = Action.REMOVE
            else:
                listed = self.profile.action(tag, sop_class)
                if sop_class is None and tag in self.profile.required_in and element.VR == "SQ":
                    listed = Action.REMOVE  # X/Z in an item: an empty sequence is seldom valid
                scrubbed = inherited in (Action.DUMMY, Action.CLEAN)
                if listed is None and scrubbed and element.VR in SCRUBBED_VRS:
                    listed = inherited if tag not in CODE_TAGS else None
                action = listed or Action.KEEP
            if tag == PIXEL_DATA:
                action = Action.KEEP  # pixels are never touched by the attribute profile
            yield Decision(dataset, element, action, applied)
            if element.VR == "SQ":
                gone = action in (Action.REMOVE, Action.EMPTY)
                below = Action.REMOVE if gone else action if action is not Action.WALK else None
                for item in element.value:
                    yield from self.decide(item, None, below or inherited, applied and not gone)

    def deidentify(self, dataset: Dataset, pixels_cleaned: bool = False) -> InstanceResult:
        """De-identify ``dataset`` (and its file meta) in place; ``pixels_cleaned``: a pixel
        rule cleaned it (the method codes say so)."""
        patient_key = str(dataset.get("PatientID", "") or dataset.get("PatientName", ""))
        decisions: list[Decision] = []
        if getattr(dataset, "file_meta", None) is not None:
            decisions.extend(self.decide(dataset.file_meta, ""))
        decisions.extend(self.decide(dataset, str(dataset.get("SOPClassUID", ""))))
        result = InstanceResult()
        result.identifying = identifying_values(
            (d.element for d in decisions if _changes_value(d)),
            (d.element for d in decisions if self._kept_on_purpose(d)),
        ) | names_in_text(d.element for d in decisions if d.action is Action.CLEAN)
        result.identifying -= {DUMMY_TEXT, *DUMMIES.values()}  # a value equal to a dummy: no leak
        context = _Context(self.pseudonyms, patient_key, result.identifying, self.profile)
        for decision in decisions:
            if decision.applied:
                context.apply(decision)
                result.counts[(_name(decision.element), OUTCOMES[decision.action])] += 1
        self._mark(dataset, pixels_cleaned)
        return result

    def _mark(self, dataset: Dataset, pixels_cleaned: bool) -> None:
        dataset.PatientIdentityRemoved = "YES"
        chosen = ["basic", *sorted(self.profile.options)]
        if pixels_cleaned:
            chosen.append("clean-pixel-data")
        dataset.DeidentificationMethod = "openjip: " + ", ".join(chosen)[:60]
        codes = []
        for option in chosen:
            value, meaning = METHOD_CODES[option]
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
            codes.append(code)
        dataset.DeidentificationMethodCodeSequence = codes
        if self.profile.shifts_dates:
            dataset.LongitudinalTemporalInformationModified = "MODIFIED"


@dataclass
class _Context:
    """One instance's pseudonyms, date shift and identifying values, applied per element."""

    pseudonyms: Pseudonyms
    patient_key: str
    identifying: set[str]
    profile: Profile

    def apply(self, decision: Decision) -> None:
        element, action = decision.element, decision.action
        if action is Action.REMOVE and int(element.tag) & REPEATING_GROUP == OVERLAY_DATA:
            # An overlay without its data breaks the Overlay Plane module: the overlay goes.
            for other in list(decision.parent.group_dataset(element.tag.group)):
                del decision.parent[other.tag]
        elif action is Action.REMOVE:
            del decision.parent[element.tag]
        elif int(element.tag) in (PATIENT_ID, PATIENT_NAME) and action is not Action.KEEP:
            # Z allows a dummy value: the keyed pseudonym keeps a patient's studies together.
            element.value = self.pseudonyms.patient(self.patient_key)
        elif action is Action.EMPTY:
            element.value = [] if element.VR == "SQ" else None
        elif action is Action.UID and element.VR == "UI" and element.value:
            values = element.value if element.VM > 1 else [element.value]
            remapped = [self.pseudonyms.uid(str(value)) for value in values]
            element.value = remapped if element.VM > 1 else remapped[0]
        elif action is Action.DUMMY and element.VR != "SQ":
            element.value = self._dummy(element)
        elif action is Action.CLEAN and element.VR != "SQ" and element.value is not None:
            element.value = self._clean(element)

    def _dummy(self, element: DataElement) -> object:
        if element.VR in DUMMIES:
            return DUMMIES[element.VR]
        if element.VR in SCRUBBED_VRS | {"AE", "CS"}:
            return DUMMY_TEXT
        if element.VR == "UI":
            return self.pseudonyms.uid(str(element.value))
        return None

    def _clean(self, element: DataElement) -> object:
        if element.VR in ("DA", "DT"):
            if not self.profile.shifts_dates:
                return DUMMIES[element.VR]
            return _shift(element, self.pseudonyms.day_shift(self.patient_key))
        if element.VR == "PN":
            return DUMMY_TEXT
        if element.VR == "TM":
            return element.value
        if element.VR == "UI":
            return self.pseudonyms.uid(str(element.value))
        if element.VR in FREE_TEXT_VRS:
            # Prose may name anyone, not only who the header names: it is replaced, not scrubbed.
            return DUMMY_TEXT
        if element.VR in SCRUBBED_VRS:
            return _scrub(element.value, self.identifying)
        return element.value


def _scrub(value: object, identifying: set[str]) -> object:
    if isinstance(value, bytes):
        return b""
    if not isinstance(value, str):
        return [_scrub(part, identifying) for part in value] if isinstance(value, list) else value
    for token in sorted(identifying, key=len, reverse=True):  # longest first: "Doe^John" first
        value = re.sub(re.escape(token), "", value, flags=re.IGNORECASE)
    return value.strip()


def _shift(element: DataElement, shift: datetime.timedelta) -> object:
    values = element.value if element.VM > 1 else [element.value]
    shifted = []
    for value in values:
        text = str(value)
        try:
            day = datetime.datetime.strptime(text[:8], "%Y%m%d") - shift
        except ValueError:
            shifted.append(DUMMIES[element.VR])  # not a date one can shift: a dummy instead
            continue
        shifted.append(day.strftime("%Y%m%d") + text[8:])
    return shifted if element.VM > 1 else shifted[0]
