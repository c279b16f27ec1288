"""The patient-data screen: does a document about to cross the site's border carry patient data?

Two kinds of finding, each naming where (the JSON path) and what kind — never the value, so the
audit log that records a refusal does not become a copy of the data it kept in:

- a value of this site's index: a PatientID or AccessionNumber as a whole token, a patient's
  birth date (as ``YYYYMMDD``, ``YYYY-MM-DD`` or ``DD.MM.YYYY``), a patient's name (every part
  of two or more, or a single part of five letters or more, as whole words in one string, in any
  order and case);
- a pattern that looks like patient data in free text whether indexed or not: a calendar date
  (``YYYYMMDD``, ``YYYY-MM-DD``, ``DD.MM.YYYY``, ``DD/MM/YYYY``) or an ID-like number (seven or
  more digits in a row that are not part of a dotted UID, or a number after ``MRN``/``PID``/
  ``patient id``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import BaseModel

from openjip.index import MetadataIndex, Query

_DATE_PATTERNS = (
    re.compile(r"(?<!\d)(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?!\d)"),
    re.compile(r"(?<!\d)(19|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?!\d)"),
    re.compile(r"(?<!\d)(0?[1-9]|[12]\d|3[01])[./](0?[1-9]|1[0-2])[./](19|20)\d\d(?!\d)"),
)
_LONG_NUMBER = re.compile(r"(?<![\w.])\d{7,}(?![\w.])")
_LABELLED_ID = re.compile(r"\b(mrn|pid|patient[ _-]?id)\b\W{0,3}\w*\d{3,}", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_WORD = re.compile(r"[^\W\d_]+")


class ScreenRequest(BaseModel):
    """The strings of a document, each with its JSON path."""

    strings: list[tuple[str, str]]


class Finding(BaseModel):
    """Where a document carries patient data and of which kind (never the value)."""

    path: str
    kind: str


@dataclass
class IndexedPatients:
    """The identifying values of the index, normalised for matching."""

    identifiers: dict[str, str] = field(default_factory=dict)
    """Lower-cased PatientID/AccessionNumber value -> its field name."""
    birth_dates: set[str] = field(default_factory=set)
    """``YYYYMMDD`` plus its ``YYYY-MM-DD`` and ``DD.MM.YYYY`` spellings."""
    names: set[frozenset[str]] = field(default_factory=set)
    """The lower-cased parts of each name."""


def indexed_patients(index: MetadataIndex) -> IndexedPatients:
    """Collect the identifying values of every study in ``index``."""
    patients = IndexedPatients()
    for study in index.find_studies(Query()):
        for name, value in (
            ("PatientID", study.PatientID),
            ("AccessionNumber", study.AccessionNumber),
        ):
            if len(value.strip()) >= 3:
                patients.identifiers[value.strip().lower()] = name
        date = study.PatientBirthDate
        if re.fullmatch(r"\d{8}", date):
            patients.birth_dates |= {
                date,
                f"{date[:4]}-{date[4:6]}-{date[6:]}",
                f"{date[6:]}.{date[4:6]}.{date[:4]}",
            }
        parts = frozenset(
            part for part in _WORD.findall(study.PatientName.lower()) if len(part) >= 2
        )
        if len(parts) >= 2 or (len(parts) == 1 and len(next(iter(parts))) >= 5):
            patients.names.add(parts)
    return patients


def _tokens(text: str) -> set[str]:
    tokens = set()
    for token in _TOKEN.findall(text):
        tokens.add(token.lower())
        tokens |= {part.lower() for part in re.split(r"[._/-]", token) if part}
    return tokens


def screen_strings(strings: list[tuple[str, str]], patients: IndexedPatients) -> list[Finding]:
    """Every finding in ``strings``: indexed values first, then patterns, per string."""
    findings: list[Finding] = []
    for path, text in strings:
        tokens = _tokens(text)
        words = set(_WORD.findall(text.lower()))
        kinds = sorted(
            {patients.identifiers[token] for token in tokens & patients.identifiers.keys()}
        )
        if any(date in text for date in patients.birth_dates):
            kinds.append("PatientBirthDate")
        if any(name <= words for name in patients.names):
            kinds.append("PatientName")
        findings += [Finding(path=path, kind=f"{kind} of an indexed patient") for kind in kinds]
        if any(pattern.search(text) for pattern in _DATE_PATTERNS):
            findings.append(Finding(path=path, kind="a date in free text"))
        if _LONG_NUMBER.search(text) or _LABELLED_ID.search(text):
            findings.append(Finding(path=path, kind="an ID-like number in free text"))
    return findings
