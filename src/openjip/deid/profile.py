"""The action table of PS3.15 Table E.1-1 and the options as overrides of its rows.

The rows come from ``tables/basic_profile.json`` (generated from a machine-readable copy of
the standard, see :mod:`openjip.deid.tables.generate`); nothing here names an attribute.
A profile is the Basic Profile column with, for every chosen option, that option's column
laid over it: where the option has an entry for a row, its action replaces the basic one.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).parent / "tables" / "basic_profile.json"


class Action(enum.Enum):
    """What happens to an attribute (PS3.15 E.1.1, the combined codes resolved below)."""

    KEEP = "K"
    REMOVE = "X"
    EMPTY = "Z"
    DUMMY = "D"
    CLEAN = "C"
    UID = "U"
    WALK = "U*"
    """A sequence kept, its items handled by the table (X/Z/U*: UIDs inside replaced)."""


# A combined code names choices that differ only in IOD conformance (X/Z: remove unless the IOD
# needs the attribute, Type 2). The action here is the one for an IOD that needs it; rows with
# "X/Z" carry the SOP classes that do (``required_in``), for all others the attribute is removed
# (Profile.action). X/D and Z/D: a dummy satisfies every Type; X/Z/U*: the sequence is kept with
# its UIDs replaced, so that references between de-identified instances still resolve.
_COMBINED = {"X/Z": Action.EMPTY, "X/D": Action.DUMMY, "Z/D": Action.DUMMY}
_COMBINED |= {"X/Z/D": Action.DUMMY, "X/Z/U*": Action.WALK}

# The options of the standard in the table's order; "retain" options win over "clean" ones
# when two chosen options have an entry for the same row (the user asked to keep it).
OPTIONS = (
    "retain-safe-private",
    "retain-uids",
    "retain-device-identity",
    "retain-institution-identity",
    "retain-patient-characteristics",
    "retain-longitudinal-full-dates",
    "retain-longitudinal-modified-dates",
    "clean-descriptors",
    "clean-structured-content",
    "clean-graphics",
)

# CID 7050 De-identification Method: the code of the Basic Profile and of every option.
METHOD_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean-pixel-data": ("113101", "Clean Pixel Data Option"),  # by a pixel rule, not a column
    "clean-graphics": ("113103", "Clean Graphics Option"),
    "clean-structured-content": ("113104", "Clean Structured Content Option"),
    "clean-descriptors": ("113105", "Clean Descriptors Option"),
    "retain-longitudinal-full-dates": (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    "retain-longitudinal-modified-dates": (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    "retain-patient-characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain-device-identity": ("113109", "Retain Device Identity Option"),
    "retain-uids": ("113110", "Retain UIDs Option"),
    "retain-safe-private": ("113111", "Retain Safe Private Option"),
    "retain-institution-identity": ("113112", "Retain Institution Identity Option"),
}

_TAG = re.compile(r"^\(([0-9A-FX]{4}),([0-9A-FX]{4})\)$")


class ProfileError(ValueError):
    """Options that do not make a profile (unknown, or excluding each other)."""


@dataclass(frozen=True)
class Profile:
    """The action for every attribute the table lists, with the chosen options applied."""

    options: frozenset[str]
    exact: dict[int, Action]
    masked: tuple[tuple[int, int, Action], ...]
    """(mask, value, action) for rows of repeating groups such as (60xx,3000)."""
    private: Action
    """REMOVE, or CLEAN under Retain Safe Private (the safe-private allow-list is kept)."""
    names: dict[int, str] = field(default_factory=dict)
    required_in: dict[int, frozenset[str]] = field(default_factory=dict)
    """X/Z rows: the SOP classes whose IOD needs the attribute (elsewhere it is removed)."""
    kept_by_option: frozenset[int] = frozenset()
    """Attributes a chosen option keeps (K) that the Basic Profile does not."""

    def action(self, tag: int, sop_class: str | None = None) -> Action | None:
        """The action for a public attribute, None when the table does not list it (kept);
        ``sop_class`` for a top-level attribute (X/Z rows depend on the IOD), None in items."""
        found = self.exact.get(tag)
        needed_by = self.required_in.get(tag)
        if needed_by is not None and sop_class is not None and sop_class not in needed_by:
            return Action.REMOVE
        if found is not None:
            return found
        for mask, value, action in self.masked:
            if tag & mask == value:
                return action
        return None

    @property
    def shifts_dates(self) -> bool:
        return "retain-longitudinal-modified-dates" in self.options


def _action(code: str) -> Action:
    return _COMBINED.get(code) or Action(code)


def _row_action(row: dict[str, Any], options: frozenset[str]) -> Action:
    columns = row["options"]
    overrides = [columns[name] for name in OPTIONS if name in options and name in columns]
    if "K" in overrides:
        return Action.KEEP
    return _action(overrides[0]) if overrides else _action(row["basic"])


@cache
def load_table(path: Path = TABLE_PATH) -> dict[str, Any]:
    """The generated table: source, standard release and rows."""
    table: dict[str, Any] = json.loads(path.read_text())
    return table


def build_profile(options: Iterable[str] = (), table: dict[str, Any] | None = None) -> Profile:
    """The Basic Profile with ``options`` laid over it; ``table`` replaces the generated one
    (tests use it to prove the report catches a broken table)."""
    chosen = frozenset(options)
    unknown = sorted(chosen - set(OPTIONS))
    if unknown:
        raise ProfileError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    if {"retain-longitudinal-full-dates", "retain-longitudinal-modified-dates"} <= chosen:
        raise ProfileError("retain-longitudinal-full-dates and -modified-dates exclude each other")
    rows = (table or load_table())["rows"]
    exact: dict[int, Action] = {}
    masked: list[tuple[int, int, Action]] = []
    names: dict[int, str] = {}
    required_in: dict[int, frozenset[str]] = {}
    kept_by_option: set[int] = set()
    private = Action.REMOVE
    for row in rows:
        action = _row_action(row, chosen)
        match = _TAG.match(row["tag"])
        if match is None:  # "(GGGG,EEEE) WHERE GGGG IS ODD": the private attributes
            private = action
            continue
        text = match.group(1) + match.group(2)
        if "X" in text:
            mask = int("".join("0" if c == "X" else "F" for c in text), 16)
            masked.append((mask, int(text.replace("X", "0"), 16), action))
        else:
            exact[int(text, 16)] = action
            names[int(text, 16)] = row["name"]
            if action is Action.KEEP and row["basic"] != "K":
                kept_by_option.add(int(text, 16))
            if (
                "required_in" in row
                and row["basic"] in ("X/Z", "X/Z/D")
                and action
                in (
                    Action.EMPTY,
                    Action.DUMMY,
                )
            ):
                required_in[int(text, 16)] = frozenset(row["required_in"])
    return Profile(
        chosen, exact, tuple(masked), private, names, required_in, frozenset(kept_by_option)
    )
