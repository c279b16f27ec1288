"""Attribute matching (PS3.4 C.2.2.2), table-driven with the kinds of examples the standard
gives: single value, list of UIDs, universal, wildcard and range matching."""

from __future__ import annotations

import pytest

from openjip.dicom.matching import InvalidMatchValue, matches

CASES = [
    # C.2.2.2.1 single value matching
    ("CS", "CT", ["CT"], True),
    ("CS", "CT", ["MR"], False),
    ("CS", "ct", ["CT"], False),  # case-sensitive except PN
    ("PN", "doe^john", ["DOE^JOHN"], True),
    ("LO", "PAT-1", ["PAT-1 "], True),  # trailing padding is not significant
    ("IS", "5", ["5"], True),
    ("IS", "05", ["5"], True),  # numbers compare as numbers
    ("DA", "20060705", ["20060705"], True),
    # C.2.2.2.2 list of UID matching
    ("UI", "1.2.3\\1.2.4", ["1.2.4"], True),
    ("UI", "1.2.3\\1.2.4", ["1.2.5"], False),
    ("UI", "1.2", ["1.2.3"], False),  # no prefix matching of UIDs
    # C.2.2.2.3 universal matching
    ("PN", "", ["ANYONE"], True),
    ("DA", "", [], True),
    ("LO", "*", ["anything"], True),
    # C.2.2.2.4 wildcard matching
    ("PN", "Smith*", ["SMITH^JOHN"], True),
    ("PN", "*^John", ["SMITH^JOHN"], True),
    ("PN", "Sm?th", ["SMITH"], True),
    ("PN", "Sm?th", ["SMYYTH"], False),
    ("LO", "A*B?D", ["AxxxBcD"], True),
    ("LO", "A*B?D", ["AxxxBcDe"], False),
    ("LO", "100%", ["100%"], True),  # no SQL LIKE semantics leak in
    ("LO", "A[1]*", ["A[1]x"], True),
    ("CS", "ORIGINAL", ["ORIGINAL", "PRIMARY"], True),  # any value of a multi-valued attribute
    ("CS", "MR\\CT", ["CT"], True),  # any of several query values
    # C.2.2.2.5 range matching
    ("DA", "20060705-20060707", ["20060706"], True),
    ("DA", "20060705-20060707", ["20060708"], False),
    ("DA", "-19920101", ["19911231"], True),
    ("DA", "19930822-", ["19930822"], True),
    ("DA", "19930822-", [], False),  # no stored date matches no range
    ("TM", "070000-080000", ["073000.123"], True),
    ("TM", "0700-0800", ["080059"], True),  # a bound covers its whole precision
    ("TM", "0700-0800", ["080100"], False),
    ("TM", "-12", ["125959.999"], True),
    ("TM", "10:00-11:00", ["103000"], True),  # ACR-NEMA style colons tolerated
    ("DT", "20060705120000-20060705130000", ["20060705123000"], True),
    ("DT", "2006-2006", ["20060705123000.5"], True),
    ("DT", "20060705120000-0500", ["20060705120000"], True),  # a single DT with a UTC offset
]


@pytest.mark.parametrize(("vr", "query", "stored", "expected"), CASES)
def test_attribute_matching(vr: str, query: str, stored: list[str], expected: bool) -> None:
    assert matches(vr, query, stored) is expected


@pytest.mark.parametrize(
    ("vr", "query"),
    [
        ("DA", "20060707-20060705"),  # ends before it starts
        ("DA", "2006-"),
        ("DA", "-"),
        ("TM", "25x"),
        ("DT", "2006x"),
    ],
)
def test_malformed_values_are_refused(vr: str, query: str) -> None:
    with pytest.raises(InvalidMatchValue):
        matches(vr, query, ["20060706"])
