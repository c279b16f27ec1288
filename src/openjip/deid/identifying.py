"""The identifying values of a source dataset: what cleaning removes from free text and what
the report's check looks for in the output bytes.

A value counts when the profile does not keep its attribute (any depth, private attributes
included) and it is specific enough to mean something: three characters or more, and not a
short number (a "2" or "100" occurs in any file). A value that is part of the value of an
attribute the table does not list (a private creator "TOSHIBA" beside the Manufacturer
"TOSHIBA_MEC") or that a chosen option keeps (a date inside a UID under Retain UIDs) is not
searched for: that attribute is kept on purpose, finding it is no leak.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from pydicom.dataelem import DataElement

TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC"})
TEXT_VRS |= {"UI", "UR", "UT"}
OPAQUE_VRS = frozenset({"UN", "OB"})
MIN_LENGTH = 3
MIN_DIGITS = 6


def _strings(element: DataElement) -> Iterator[str]:
    if element.VR in OPAQUE_VRS and isinstance(element.value, bytes):
        text = element.value.decode("latin-1").strip("\0 ")
        if text.isprintable():
            yield from text.split("\\")
        return
    if element.VR not in TEXT_VRS or element.value is None:
        return
    values = element.value if element.VM > 1 else [element.value]
    for value in values:
        text = str(value).strip()
        yield text
        if element.VR == "PN":  # the parts of a name occur on their own in free text
            yield from (part.strip() for part in text.replace("=", "^").split("^"))


def _specific(text: str) -> bool:
    if len(text) < MIN_LENGTH:
        return False
    return not (text.isdigit() and len(text) < MIN_DIGITS)


PERSON_NAME_SHAPED = re.compile(r"[^\s\\^=,;:()]+\^[^\s\\^=,;:()]+(?:\^[^\s\\^=,;:()]*)*")
"""A name written in free text the way DICOM writes one (``Doe^John``)."""


def names_in_text(cleaned: Iterable[DataElement]) -> set[str]:
    """Person names in DICOM form (``Doe^John``) inside cleaned descriptors, with their parts:
    a name no attribute of the header holds, which cleaning would otherwise keep."""
    found: set[str] = set()
    for element in cleaned:
        for text in _strings(element):
            for name in PERSON_NAME_SHAPED.findall(text):
                parts = [part for part in name.split("^") if _specific(part)]
                if any(part[0].isalpha() for part in parts):  # "1^2" is no name
                    found |= {name, *parts}
    return found


def identifying_values(removed: Iterable[DataElement], kept: Iterable[DataElement]) -> set[str]:
    """Values of the ``removed`` elements, less those inside values of the ``kept`` ones."""
    found = {text for element in removed for text in _strings(element) if _specific(text)}
    retained = {text for element in kept for text in _strings(element) if _specific(text)}
    return {value for value in found if not any(value in other for other in retained)}
