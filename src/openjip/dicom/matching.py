"""Attribute matching of PS3.4 C.2.2.2 for one query key against one stored value.

The metadata index matches the keys of :data:`openjip.dicom.query_keys.MATCHING_KEYS` itself;
this module matches every other key C-FIND receives against the values of the records (and
stored headers) the index returned:

- empty value: universal matching (C.2.2.2.3);
- UI: single value or a ``\\``-separated list of UIDs (C.2.2.2.2);
- DA, TM, DT: single value or range ``A-B``, ``A-``, ``-B`` (C.2.2.2.5); a missing stored
  value matches no range;
- AE, CS, LO, LT, PN, SH, ST, UC, UR, UT: ``*`` and ``?`` wildcards (C.2.2.2.4), PN ignoring
  ASCII case as the index does;
- other VRs (IS, DS, US, ...): single value, compared as numbers where both are numbers.

A query value of several ``\\``-separated values matches if any of them does, and a stored
multi-valued attribute matches if any of its values does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
RANGE_VRS = frozenset({"DA", "TM", "DT"})


class InvalidMatchValue(ValueError):
    """A query value that no matching rule accepts (e.g. a date range ending before it starts)."""


def matches(vr: str, query_value: str, stored: Sequence[str]) -> bool:
    """Whether ``stored`` (the attribute's values, empty if absent) matches ``query_value``."""
    value = query_value.strip()
    if not value or value == "*":
        return True
    if vr == "UI":
        return bool(set(_values(value)) & set(stored))
    alternatives = [value] if vr in ("LT", "ST", "UT") else _values(value)
    for alternative in alternatives:
        if vr in RANGE_VRS:
            low, high = range_bounds(vr, alternative)
            if any(_in_range(vr, item, low, high) for item in stored if item.strip()):
                return True
        elif vr in WILDCARD_VRS and ("*" in alternative or "?" in alternative):
            pattern = _wildcard(alternative, ignore_case=vr == "PN")
            if any(pattern.fullmatch(item) for item in stored):
                return True
        elif any(_equal(vr, alternative, item) for item in stored):
            return True
    return False


def _values(value: str) -> list[str]:
    return [part.strip() for part in value.split("\\") if part.strip()]


def _equal(vr: str, wanted: str, stored: str) -> bool:
    stored = stored.strip()
    if vr == "PN":
        return wanted.casefold() == stored.casefold()
    if vr in ("IS", "DS", "US", "UL", "SS", "SL", "FL", "FD"):
        try:
            return float(wanted) == float(stored)
        except ValueError:
            return wanted == stored
    return wanted == stored


@lru_cache(maxsize=256)
def _wildcard(value: str, *, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in value
    )
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


_DATE = re.compile(r"\d{8}")
_TIME = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")
_DATETIME = re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?")


def range_bounds(vr: str, value: str) -> tuple[str | None, str | None]:
    """A DA/TM/DT value or range as inclusive, comparable (first, last) bounds.

    A bound given to a coarser precision covers all of it: ``-12`` for TM ends at 12:59:59.
    """
    first, dash, last = value.partition("-")
    if vr == "DT" and dash and _DATETIME.fullmatch(value):
        first, dash, last = value, "", ""  # a single DT with a negative UTC offset
    if not dash:
        last = first
    if not first and not last:
        raise InvalidMatchValue(f"{value!r} is neither a {vr} value nor a range")
    low = _normalise(vr, first, fill="0") if first else None
    high = _normalise(vr, last, fill="9") if last else None
    if low is not None and high is not None and low > high:
        raise InvalidMatchValue(f"range {value!r} ends before it starts")
    return low, high


def _normalise(vr: str, value: str, *, fill: str) -> str:
    value = value.strip()
    if vr == "DA":
        if not _DATE.fullmatch(value):
            raise InvalidMatchValue(f"{value!r} is not a date YYYYMMDD")
        return value
    if vr == "TM":
        value = value.replace(":", "")
        if not _TIME.fullmatch(value):
            raise InvalidMatchValue(f"{value!r} is not a time HHMMSS.FFFFFF")
        whole, _, fraction = value.partition(".")
        return whole.ljust(6, fill) + "." + fraction.ljust(6, fill)
    if not _DATETIME.fullmatch(value):
        raise InvalidMatchValue(f"{value!r} is not a date-time YYYYMMDDHHMMSS.FFFFFF")
    value = re.sub(r"[+-]\d{4}$", "", value)
    whole, _, fraction = value.partition(".")
    return whole.ljust(14, fill) + "." + fraction.ljust(6, fill)


def _in_range(vr: str, stored: str, low: str | None, high: str | None) -> bool:
    try:
        value = _normalise(vr, stored, fill="0")
    except InvalidMatchValue:
        return False  # a malformed stored value matches no range
    return (low is None or value >= low) and (high is None or value <= high)
