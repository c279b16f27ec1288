"""C-FIND SCP (PS3.4 C.4.1): Patient Root and Study Root queries answered from the index.

Keys the index matches itself (:data:`openjip.dicom.query_keys.MATCHING_KEYS`) become an
:class:`openjip.index.Query`; every other key with a value is matched on the records the index
returns (:mod:`openjip.dicom.matching`), with values from the record, its study, or at IMAGE
level the stored header. A requested key openjip does not know is returned empty and does not
constrain the search (C.2.2.1.3). Sequence keys match universally.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pynetdicom import evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from openjip.access.dimse import DimseAccess
from openjip.dicom.matching import InvalidMatchValue, matches
from openjip.dicom.query_keys import MATCHING_KEYS, UID_LIST_FIELDS, set_query_field
from openjip.index import (
    IndexError_,
    IndexUnavailable,
    InstanceRecord,
    InvalidQuery,
    MetadataIndex,
    Query,
    SeriesRecord,
    StudyRecord,
)
from openjip.receiver.status import NOT_AUTHORIZED, Find, Status

LOGGER = logging.getLogger(__name__)

PATIENT_ROOT_LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
STUDY_ROOT_LEVELS = ("STUDY", "SERIES", "IMAGE")
LEVELS_OF_MODEL: dict[str, tuple[str, ...]] = {
    PatientRootQueryRetrieveInformationModelFind: PATIENT_ROOT_LEVELS,
    PatientRootQueryRetrieveInformationModelMove: PATIENT_ROOT_LEVELS,
    PatientRootQueryRetrieveInformationModelGet: PATIENT_ROOT_LEVELS,
    StudyRootQueryRetrieveInformationModelFind: STUDY_ROOT_LEVELS,
    StudyRootQueryRetrieveInformationModelMove: STUDY_ROOT_LEVELS,
    StudyRootQueryRetrieveInformationModelGet: STUDY_ROOT_LEVELS,
}
"""Query/Retrieve information models openjip serves and the levels each allows."""
FIND_MODELS = (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

_NOT_KEYS = {
    "QueryRetrieveLevel",
    "SpecificCharacterSet",
    "RetrieveAETitle",
    "TimezoneOffsetFromUTC",
}
_STUDY_FIELDS = {f.name for f in fields(StudyRecord)}
_SERIES_FIELDS = {f.name for f in fields(SeriesRecord)}
_INSTANCE_FIELDS = {f.name for f in fields(InstanceRecord)} - {"header"}
_STUDY_UID_CHUNK = 1000
PACE_EVERY = 64
"""Every this many pending responses C-FIND lets the association catch up (see
:func:`_let_dul_catch_up`)."""
CATCH_UP_SECONDS = 30.0


class BadIdentifier(Exception):
    """A request identifier openjip cannot answer; ``status`` says which failure to send."""

    def __init__(self, status: Status, comment: str) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment


@dataclass
class Key:
    """One key of a request identifier: its tag, keyword, VR and value as text."""

    tag: BaseTag
    keyword: str
    vr: str
    value: str

    @property
    def header_key(self) -> str:
        """The tag as a DICOM JSON key (``0020000D``)."""
        return f"{int(self.tag):08X}"


@dataclass
class ParsedIdentifier:
    """A C-FIND/C-MOVE/C-GET identifier: level, what the index matches, what we match."""

    level: str
    keys: list[Key]
    query: Query
    filters: list[Key] = field(default_factory=list)


def decode_identifier(event: evt.Event) -> Dataset:
    """The request's identifier, or :class:`BadIdentifier` (0xC000) when it cannot be decoded."""
    try:
        identifier = event.identifier
        # Decoding is lazy: touch every element so that a broken one fails here.
        for element in identifier:
            _ = element.value
    except Exception as exc:  # any decode failure of peer data is the peer's error, not ours
        raise BadIdentifier(Find.UNABLE_TO_PROCESS, f"cannot decode identifier: {exc}") from exc
    return identifier


def parse_identifier(identifier: Dataset, model: str) -> ParsedIdentifier:
    """Level and keys of an identifier; raises :class:`BadIdentifier`."""
    levels = LEVELS_OF_MODEL.get(model)
    if levels is None:
        raise BadIdentifier(Find.IDENTIFIER_MISMATCH, f"unsupported information model {model}")
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if not level:
        raise BadIdentifier(Find.IDENTIFIER_MISMATCH, "QueryRetrieveLevel (0008,0052) is missing")
    if level not in levels:
        raise BadIdentifier(
            Find.IDENTIFIER_MISMATCH, f"level {level} not in this model ({', '.join(levels)})"
        )
    parsed = ParsedIdentifier(level, [], Query())
    for element in identifier:
        keyword = element.keyword or keyword_for_tag(element.tag)
        if keyword in _NOT_KEYS or element.tag.is_private or element.tag.group == 0x0002:
            continue
        key = Key(element.tag, keyword, element.VR, _text(element))
        parsed.keys.append(key)
        if element.VR == "SQ" or not key.value or key.value == "*":
            continue
        query_field = MATCHING_KEYS.get(keyword)
        pushable = query_field is not None and (
            query_field in UID_LIST_FIELDS or "\\" not in key.value
        )
        if pushable:
            assert query_field is not None
            set_query_field(parsed.query, query_field, key.value)
        else:
            parsed.filters.append(key)
    return parsed


def _text(element: DataElement) -> str:
    value = element.value
    if value is None or element.VR == "SQ":
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(item) for item in value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value)


# -- looking up values ---------------------------------------------------------------------------


@dataclass
class PatientRecord:
    """A patient as C-FIND reports it: fields of its studies, counts summed over them."""

    PatientID: str
    PatientName: str = ""
    PatientBirthDate: str = ""
    PatientSex: str = ""
    NumberOfPatientRelatedStudies: int = 0
    NumberOfPatientRelatedSeries: int = 0
    NumberOfPatientRelatedInstances: int = 0


def patients_of(studies: Sequence[StudyRecord]) -> list[PatientRecord]:
    """Studies grouped by PatientID, in the order the patients first appear."""
    patients: dict[str, PatientRecord] = {}
    for study in studies:
        patient = patients.get(study.PatientID)
        if patient is None:
            patient = patients[study.PatientID] = PatientRecord(study.PatientID)
        for name in ("PatientName", "PatientBirthDate", "PatientSex"):
            if not getattr(patient, name):
                setattr(patient, name, getattr(study, name))
        patient.NumberOfPatientRelatedStudies += 1
        patient.NumberOfPatientRelatedSeries += study.NumberOfStudyRelatedSeries
        patient.NumberOfPatientRelatedInstances += study.NumberOfStudyRelatedInstances
    return list(patients.values())


Values = list[str] | None
"""The values of an attribute of a match (``[]`` if empty); ``None`` when openjip does not know
the attribute for this match."""


class MatchView:
    """The attribute values of one match: its record, then its study, then its header."""

    def __init__(self, record: Any, own_fields: set[str], study: StudyRecord | None = None) -> None:
        self.record = record
        self.own_fields = own_fields
        self.study = study

    def values(self, key: Key) -> Values:
        """The stored values for ``key``."""
        if key.keyword in self.own_fields:
            return _as_values(getattr(self.record, key.keyword))
        if self.study is not None and key.keyword in _STUDY_FIELDS:
            return _as_values(getattr(self.study, key.keyword))
        header = getattr(self.record, "header", None)
        if header:
            element = header.get(key.header_key)
            if element is None:
                return []
            return _json_values(element)
        return None

    def element(self, key: Key) -> DataElement:
        """The response element for ``key``: the stored value, or empty."""
        header = getattr(self.record, "header", None)
        if key.keyword not in self.own_fields and header and key.header_key in header:
            if key.vr == "SQ" or header[key.header_key].get("vr") == "SQ":
                return DataElement(key.tag, "SQ", [])
            loaded = Dataset.from_json({key.header_key: header[key.header_key]})
            return loaded[key.tag]
        values = self.values(key) if key.vr != "SQ" else None
        return _element(key, values or [])


def _as_values(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(item) for item in value]
    return [str(value)]


def _json_values(element: dict[str, Any]) -> list[str]:
    values = []
    for item in element.get("Value", []):
        if isinstance(item, dict):
            values.append(str(item.get("Alphabetic", "")))
        else:
            values.append(str(item))
    return values


_NUMERIC_VRS = {"US": int, "UL": int, "SS": int, "SL": int, "FL": float, "FD": float}


def _element(key: Key, values: list[str]) -> DataElement:
    if not values:
        return DataElement(key.tag, key.vr, [] if key.vr == "SQ" else None)
    convert = _NUMERIC_VRS.get(key.vr)
    items: list[Any] = [convert(v) for v in values] if convert else values
    return DataElement(key.tag, key.vr, items if len(items) > 1 else items[0])


# -- the search ----------------------------------------------------------------------------------


def search(index: MetadataIndex, parsed: ParsedIdentifier) -> list[MatchView]:
    """Every match of the identifier at its level, in index order."""
    requested = {key.keyword for key in parsed.keys}
    try:
        if parsed.level == "PATIENT":
            studies = index.find_studies(parsed.query)
            views = [
                MatchView(patient, {f.name for f in fields(PatientRecord)})
                for patient in patients_of(studies)
            ]
        elif parsed.level == "STUDY":
            views = [MatchView(study, _STUDY_FIELDS) for study in index.find_studies(parsed.query)]
        elif parsed.level == "SERIES":
            series = index.find_series(parsed.query)
            studies_needed = bool((requested - _SERIES_FIELDS) & _STUDY_FIELDS)
            by_uid = _studies_of(index, series) if studies_needed else {}
            views = [
                MatchView(item, _SERIES_FIELDS, by_uid.get(item.StudyInstanceUID))
                for item in series
            ]
        else:
            header_needed = bool(requested - _INSTANCE_FIELDS)
            instances = index.find_instances(parsed.query, with_header=header_needed)
            views = [MatchView(item, _INSTANCE_FIELDS) for item in instances]
    except InvalidQuery as exc:
        raise BadIdentifier(Find.UNABLE_TO_PROCESS, str(exc)) from exc
    except IndexUnavailable as exc:
        raise BadIdentifier(Find.OUT_OF_RESOURCES, f"index unavailable: {exc}") from exc
    except IndexError_ as exc:
        raise BadIdentifier(Find.UNABLE_TO_PROCESS, f"index: {exc}") from exc
    return [view for view in views if _passes(view, parsed.filters)]


def _studies_of(index: MetadataIndex, series: list[SeriesRecord]) -> dict[str, StudyRecord]:
    uids = sorted({item.StudyInstanceUID for item in series})
    studies: dict[str, StudyRecord] = {}
    for start in range(0, len(uids), _STUDY_UID_CHUNK):
        chunk = Query(StudyInstanceUID=uids[start : start + _STUDY_UID_CHUNK])
        studies.update((study.StudyInstanceUID, study) for study in index.find_studies(chunk))
    return studies


def _passes(view: MatchView, filters: list[Key]) -> bool:
    for key in filters:
        values = view.values(key)
        if values is None:
            continue  # an attribute openjip does not keep cannot constrain the search
        try:
            if not matches(key.vr, key.value, values):
                return False
        except InvalidMatchValue as exc:
            raise BadIdentifier(Find.UNABLE_TO_PROCESS, f"{key.keyword or key.tag}: {exc}") from exc
    return True


def check_filters(parsed: ParsedIdentifier) -> None:
    """Reject malformed filter values before searching (a bad range with no matches is still
    bad)."""
    for key in parsed.filters:
        try:
            matches(key.vr, key.value, [])
        except InvalidMatchValue as exc:
            raise BadIdentifier(Find.UNABLE_TO_PROCESS, f"{key.keyword or key.tag}: {exc}") from exc
    try:
        parsed.query.study_date_range()
    except InvalidQuery as exc:
        raise BadIdentifier(Find.UNABLE_TO_PROCESS, str(exc)) from exc


def response_identifier(view: MatchView, parsed: ParsedIdentifier, ae_title: str) -> Dataset:
    """The pending response's identifier: every requested key, filled where known."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = parsed.level
    ds.RetrieveAETitle = ae_title
    for key in parsed.keys:
        ds[key.tag] = view.element(key)
    return ds


def _let_dul_catch_up(assoc: Any) -> None:
    """Wait until the association's DUL thread has sent every queued response, then give it a
    moment to read what the peer sent meanwhile: it reads only when it has nothing to send, so
    without this a C-CANCEL would wait behind the whole answer (which would also sit in
    memory at once)."""
    pending = assoc.dul.to_provider_queue
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while not pending.empty() and assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.001)


class FindHandler:
    """``EVT_C_FIND`` handler: yields pending matches, honours C-CANCEL."""

    def __init__(self, index: MetadataIndex, ae_title: str, access: DimseAccess) -> None:
        self.index = index
        self.ae_title = ae_title
        self.access = access

    def __call__(self, event: evt.Event) -> Iterator[tuple[Dataset | int, Dataset | None]]:
        decision = self.access.for_request(event, "find")
        if not decision.allowed:
            yield NOT_AUTHORIZED.response(decision.comment), None
            return
        try:
            parsed = parse_identifier(
                decode_identifier(event), str(event.request.AffectedSOPClassUID)
            )
            check_filters(parsed)
            decision.grant.restrict(parsed.query)
            views = search(self.index, parsed)
        except BadIdentifier as exc:
            who, code = event.assoc.requestor.ae_title, exc.status.code
            LOGGER.warning("C-FIND from %s refused with 0x%04X: %s", who, code, exc.comment)
            yield exc.status.response(exc.comment), None
            return
        for number, view in enumerate(views):
            if number and number % PACE_EVERY == 0:
                _let_dul_catch_up(event.assoc)
            if event.is_cancelled:
                yield Find.CANCELLED.code, None
                return
            yield Find.PENDING.code, response_identifier(view, parsed, self.ae_title)
