"""The OpenSearch layout of the metadata index, as data: index names, analysis settings, and the
explicit mappings of study, series, instance and run-output documents (one index each); and the
conversion of records to documents and back.

Documents carry the record fields under their record names (``StudyRecord``, ``SeriesRecord``,
``InstanceRecord``, ``RunOutput``), so ``_source`` turns back into a record field by field.
Series documents also feed ``text``, the field ``Query.text`` searches: every word of
StudyDescription, SeriesDescription and PatientName indexed with all its prefixes, so that a
query word matches when it starts a word there (case and accents ignored).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from openjip.index.base import InstanceRecord, RunOutput, SeriesRecord, StudyRecord

KINDS = ("studies", "series", "instances", "runs")
"""The indices, named ``<prefix>-<kind>``; ``runs`` keeps the non-DICOM outputs of steps."""

MAX_PREFIX_CHARS = 30
"""Longest word prefix indexed for ``text``; longer query words match on their first 30
characters."""

ANALYSIS: dict[str, Any] = {
    # Words are runs of letters and digits, as SQLite's unicode61 tokenizer sees them (the
    # standard tokenizer would keep "1.5mm" or "O'Brien" whole).
    "tokenizer": {"openjip_words": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"}},
    "filter": {
        "openjip_word_prefixes": {
            "type": "edge_ngram",
            "min_gram": 1,
            "max_gram": MAX_PREFIX_CHARS,
        },
        "openjip_truncate": {"type": "truncate", "length": MAX_PREFIX_CHARS},
    },
    "analyzer": {
        # Index side: every prefix of every word; search side: whole words, truncated to the
        # longest prefix indexed. Both fold case and accents (like SQLite's unicode61 with
        # remove_diacritics), so "muller" finds MÜLLER.
        "openjip_prefixes": {
            "type": "custom",
            "tokenizer": "openjip_words",
            "filter": ["lowercase", "asciifolding", "openjip_word_prefixes"],
        },
        "openjip_words": {
            "type": "custom",
            "tokenizer": "openjip_words",
            "filter": ["lowercase", "asciifolding", "openjip_truncate"],
        },
    },
}

# Longer values stay in _source but are not indexed: Lucene refuses terms over 32766 bytes, and
# one absurd PatientName must not make the whole instance unindexable.
_KEYWORD = {"type": "keyword", "ignore_above": 8191}
_DESCRIPTION = {"type": "text", "analyzer": "standard"}
# StudyDate: DICOM's YYYYMMDD is basic_date. Empty dates are written as null (no value, so no
# range matches them and they sort first); a malformed one is kept in _source but not indexed,
# instead of failing the whole document.
_STUDY_DATE = {"type": "date", "format": "basic_date", "ignore_malformed": True}
_RECEIVED_AT = {"type": "double"}
"""UNIX seconds as sent; a double keeps the exact value the completion CAS compares."""

_STUDY_FIELDS: dict[str, Any] = {
    "StudyInstanceUID": _KEYWORD,
    "PatientID": _KEYWORD,
    "PatientName": _KEYWORD,
    "PatientBirthDate": _KEYWORD,  # may be partial or odd; only returned, never ranged
    "PatientSex": _KEYWORD,
    "StudyDate": _STUDY_DATE,
    "StudyTime": _KEYWORD,
    "StudyDescription": _DESCRIPTION,
    "StudyID": _KEYWORD,
    "AccessionNumber": _KEYWORD,
    "ReferringPhysicianName": _KEYWORD,
    # The projects of the study (repeated in its series, which queries filter on).
    "projects": _KEYWORD,
}

STUDY_PROPERTIES: dict[str, Any] = {
    **_STUDY_FIELDS,
    "ModalitiesInStudy": _KEYWORD,
    "NumberOfStudyRelatedSeries": {"type": "integer"},
    "NumberOfStudyRelatedInstances": {"type": "integer"},
    "last_received_at": _RECEIVED_AT,
}

_TEXT_SOURCE = {"copy_to": "text"}
SERIES_PROPERTIES: dict[str, Any] = {
    "SeriesInstanceUID": _KEYWORD,
    "StudyInstanceUID": _KEYWORD,
    "PatientID": _KEYWORD,
    "PatientName": {**_KEYWORD, **_TEXT_SOURCE},
    "StudyDate": _STUDY_DATE,
    "StudyDescription": {**_DESCRIPTION, **_TEXT_SOURCE},
    "AccessionNumber": _KEYWORD,
    "Modality": _KEYWORD,
    "SeriesNumber": {"type": "integer"},
    "SeriesDescription": {**_DESCRIPTION, **_TEXT_SOURCE},
    "BodyPartExamined": _KEYWORD,
    "Manufacturer": _KEYWORD,
    "projects": _KEYWORD,
    "NumberOfSeriesRelatedInstances": {"type": "integer"},
    "size": {"type": "long"},
    "first_received_at": _RECEIVED_AT,
    "last_received_at": _RECEIVED_AT,
    "source_ae": _KEYWORD,
    "derived_from": _KEYWORD,
    "complete": {"type": "boolean"},
    "version": {"type": "integer"},
    "text": {"type": "text", "analyzer": "openjip_prefixes", "search_analyzer": "openjip_words"},
}

INSTANCE_PROPERTIES: dict[str, Any] = {
    "SOPInstanceUID": _KEYWORD,
    "SeriesInstanceUID": _KEYWORD,
    **_STUDY_FIELDS,
    "SOPClassUID": _KEYWORD,
    "Modality": _KEYWORD,
    "SeriesNumber": {"type": "integer"},
    "SeriesDescription": _DESCRIPTION,
    "BodyPartExamined": _KEYWORD,
    "Manufacturer": _KEYWORD,
    "InstanceNumber": {"type": "integer"},
    "TransferSyntaxUID": _KEYWORD,
    "object_key": _KEYWORD,
    "size": {"type": "long"},
    "received_at": _RECEIVED_AT,
    "source_ae": _KEYWORD,
    "derived_from": _KEYWORD,
    # The DICOM JSON header is kept for retrieval only: not parsed into fields, not searchable.
    "header": {"type": "object", "enabled": False},
}

# Looked up by exact value only (term filters) and sorted by object_key.
RUN_OUTPUT_PROPERTIES: dict[str, Any] = {
    "object_key": _KEYWORD,
    "workflow": _KEYWORD,
    "run_id": _KEYWORD,
    "step": _KEYWORD,
    "SeriesInstanceUID": _KEYWORD,
    "size": {"type": "long"},
    "created_at": {"type": "double"},
}

PROPERTIES: dict[str, dict[str, Any]] = {
    "studies": STUDY_PROPERTIES,
    "series": SERIES_PROPERTIES,
    "instances": INSTANCE_PROPERTIES,
    "runs": RUN_OUTPUT_PROPERTIES,
}


TEMPLATE_VERSION = 1
"""Schema version of the templates and mappings below, in each template's ``version`` (and
``_meta.schema_version``). A template without one was put by openjip 0.2 or older: version 1.
Adding fields keeps the version (an existing index takes them with a mapping update); a change
an existing index cannot take raises it, and older code then refuses the newer templates."""


def index_name(prefix: str, kind: str) -> str:
    """The name of one of the indices."""
    return f"{prefix}-{kind}"


def index_template(prefix: str, kind: str, *, shards: int, replicas: int) -> dict[str, Any]:
    """The composable index template of one index.

    Templates, not only the create request, carry the mappings so that an index that a write
    re-creates (after ``clear()`` deleted it while another process was still writing) gets the
    right mapping rather than a dynamic one; ``dynamic: strict`` refuses fields not listed here.
    """
    return {
        "index_patterns": [index_name(prefix, kind)],
        "priority": 100,
        "version": TEMPLATE_VERSION,
        "template": {
            "settings": {
                "index": {"number_of_shards": shards, "number_of_replicas": replicas},
                "analysis": ANALYSIS,
            },
            "mappings": {"dynamic": "strict", "properties": PROPERTIES[kind]},
        },
        "_meta": {"owner": "openjip", "kind": kind, "schema_version": TEMPLATE_VERSION},
    }


# -- records and documents ----------------------------------------------------------------------


def to_document(record: InstanceRecord | SeriesRecord | StudyRecord) -> dict[str, Any]:
    """A record as a document: an empty StudyDate is left out of the date field (null)."""
    data = (
        record.to_dict(with_header=True) if isinstance(record, InstanceRecord) else record.to_dict()
    )
    if not data.get("StudyDate"):
        data["StudyDate"] = None
    return data


_R = TypeVar("_R", InstanceRecord, SeriesRecord, StudyRecord, RunOutput)


def _record(cls: type[_R], source: dict[str, Any]) -> _R:
    """A record from a document: fields it lacks take their defaults, null strings are ""."""
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in source:
            continue
        value = source[f.name]
        if value is None and f.default == "":
            value = ""
        values[f.name] = value
    return cls(**values)


def study_record(source: dict[str, Any]) -> StudyRecord:
    record = _record(StudyRecord, source)
    record.ModalitiesInStudy = sorted(record.ModalitiesInStudy)
    return record


def series_record(source: dict[str, Any]) -> SeriesRecord:
    record = _record(SeriesRecord, source)
    record.complete = bool(record.complete)
    return record


def instance_record(source: dict[str, Any]) -> InstanceRecord:
    return _record(InstanceRecord, source)


def run_output(source: dict[str, Any]) -> RunOutput:
    return _record(RunOutput, source)
