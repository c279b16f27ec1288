"""The query keys openjip matches on and returns, shared by C-FIND and QIDO-RS.

``MATCHING_KEYS`` says which DICOM attribute the metadata index matches itself (a field of
:class:`openjip.index.Query`); every other attribute a record or a stored header holds is
matched by :mod:`openjip.dicom.matching` on the records the index returns. ``*_KEYWORDS`` are
the attributes each level returns by default.
"""

from __future__ import annotations

from typing import Any

UID_LIST_FIELDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
"""Query fields that take a list of UIDs (any of them matches)."""

MATCHING_KEYS: dict[str, str] = {
    "PatientID": "PatientID",
    "PatientName": "PatientName",
    "StudyDate": "StudyDate",
    "AccessionNumber": "AccessionNumber",
    "Modality": "Modality",
    "ModalitiesInStudy": "Modality",
    "BodyPartExamined": "BodyPartExamined",
    "StudyInstanceUID": "StudyInstanceUID",
    "SeriesInstanceUID": "SeriesInstanceUID",
    "SOPInstanceUID": "SOPInstanceUID",
}
"""Query key (DICOM keyword) → field of :class:`openjip.index.Query`."""

PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "NumberOfPatientRelatedStudies",
    "NumberOfPatientRelatedSeries",
    "NumberOfPatientRelatedInstances",
)
STUDY_KEYWORDS = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDescription",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_KEYWORDS = (
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
    "SeriesInstanceUID",
    "BodyPartExamined",
    "Manufacturer",
    "NumberOfSeriesRelatedInstances",
    "StudyInstanceUID",
)
INSTANCE_KEYWORDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
    "StudyInstanceUID",
    "SeriesInstanceUID",
)


def set_query_field(query: Any, field: str, value: str) -> None:
    """Set one :class:`openjip.index.Query` field from a DICOM query value (UID lists are
    split on ``\\`` or ``,``)."""
    if field in UID_LIST_FIELDS:
        uids = [uid for part in value.replace("\\", ",").split(",") if (uid := part.strip())]
        setattr(query, field, uids)
    else:
        setattr(query, field, value)
