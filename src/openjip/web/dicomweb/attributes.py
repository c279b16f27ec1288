"""Which DICOM attributes QIDO-RS matches on and returns, and index records as DICOM JSON.

Query keys may be given by keyword (``PatientID``) or by tag (``00100020``). Values use DICOM
matching (wildcards, date ranges, UID lists), exactly as :class:`openjip.index.Query` defines it;
``fuzzymatching=true`` makes a patient name match wherever it occurs in the name.
``orderby`` (as dcm4chee's archive takes it: a keyword, ``-`` before it for descending) orders
a study search (:mod:`qido` reads it) by one of :data:`openjip.index.STUDY_ORDERS`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from openjip.dicom.query_keys import MATCHING_KEYS, set_query_field
from openjip.index import Query
from openjip.web.dicomweb.errors import DicomWebError

CONTROL_KEYS = ("limit", "offset", "includefield", "fuzzymatching", "orderby")
MAX_LIMIT = 10_000
"""Largest ``limit`` a search takes (OpenSearch's default result window); larger is a 400."""
MAX_OFFSET = 1_000_000_000
"""Largest ``offset`` a search takes; larger is a 400 (the index backends bind 64-bit ints)."""
_WHOLE_NUMBER = re.compile(r"[0-9]{1,10}\Z")


def keyword_of(key: str) -> str:
    """The DICOM keyword of a query key given as keyword or tag; ``""`` if it is neither."""
    if tag_for_keyword(key) is not None:
        return key
    try:
        return keyword_for_tag(int(key, 16)) if len(key) == 8 else ""
    except ValueError:
        return ""


def build_query(params: Mapping[str, str], fixed: Mapping[str, str]) -> tuple[Query, list[str]]:
    """The index query of QIDO parameters (plus UIDs fixed by the path) and the includefields.

    Raises :class:`DicomWebError` 400 naming an attribute it cannot match on or a bad value.
    """
    query = Query()
    include: list[str] = []
    for key, value in params.items():
        if key in CONTROL_KEYS:
            if key == "includefield":
                include.extend(part for part in value.split(",") if part)
            continue
        keyword = keyword_of(key)
        field = MATCHING_KEYS.get(keyword)
        if field is None:
            raise DicomWebError(
                400,
                f"cannot match on {key!r}; supported: {', '.join(sorted(MATCHING_KEYS))}",
            )
        set_query_field(query, field, value)
    for field, value in fixed.items():
        set_query_field(query, field, value)
    if params.get("fuzzymatching", "").lower() == "true":
        query.PatientName = _fuzzy(query.PatientName)
    query.limit = _bounded(params, "limit", MAX_LIMIT)
    query.offset = _bounded(params, "offset", MAX_OFFSET) or 0
    return query, include


def _fuzzy(name: str) -> str:
    """A patient name pattern that fuzzy matching widens: without wildcards, any name that
    contains it (case is ignored for names anyway), so ``smith`` finds ``Smith^John``."""
    if not name or "*" in name or "?" in name:
        return name
    return f"*{name}*"


def _bounded(params: Mapping[str, str], name: str, maximum: int) -> int | None:
    """The whole number ``params[name]`` (ASCII digits only) up to ``maximum``; else a 400."""
    value = params.get(name)
    if value is None:
        return None
    number = int(value) if _WHOLE_NUMBER.match(value) else maximum + 1
    if number > maximum:
        raise DicomWebError(
            400, f"{name} must be a whole number from 0 to {maximum}, not {value[:40]!r}"
        )
    return number


@cache
def _tag_and_vr(keyword: str) -> tuple[str, str]:
    """DICOM JSON key and VR of a keyword (pydicom's lookups cost ~10 µs; a search result
    of a hundred studies makes over a thousand)."""
    return f"{tag_for_keyword(keyword):08X}", str(dictionary_VR(keyword))


def element(keyword: str, value: Any) -> dict[str, Any]:
    """The DICOM JSON element of ``keyword`` holding ``value`` (no ``Value`` when empty)."""
    vr = _tag_and_vr(keyword)[1]
    if value is None or value == "" or value == []:
        return {"vr": vr}
    values = value if isinstance(value, list) else [value]
    if vr == "PN":
        values = [{"Alphabetic": str(item)} for item in values]
    elif vr in ("IS", "US", "UL", "SL", "SS"):
        values = [int(item) for item in values]
    else:
        values = [str(item) for item in values]
    return {"vr": vr, "Value": values}


def to_dicom_json(record: Any, keywords: tuple[str, ...]) -> dict[str, Any]:
    """DICOM JSON of the given attributes of an index record."""
    dataset: dict[str, Any] = {}
    for keyword in keywords:
        dataset[_tag_and_vr(keyword)[0]] = element(keyword, getattr(record, keyword, None))
    return dataset


def with_retrieve_url(dataset: dict[str, Any], url: str) -> dict[str, Any]:
    """``dataset`` with its RetrieveURL (0008,1190)."""
    dataset["00081190"] = {"vr": "UR", "Value": [url]}
    return dataset
