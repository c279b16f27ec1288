"""The MetadataIndex contract: every backend in ``conftest.BACKENDS`` must pass all of it.

Query semantics are pinned down table-driven over one small data set, so that another backend
(and C-FIND / QIDO on top of them) can be checked against the very same expectations.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from openjip.index import (
    InstanceRecord,
    InvalidQuery,
    InvalidRecord,
    MetadataIndex,
    Query,
    RunOutput,
    parse_date_range,
)

# -- the data set of the query tests ------------------------------------------------------------

STUDIES: dict[str, dict[str, Any]] = {
    "1.1": dict(
        PatientID="PAT-1",
        PatientName="DOE^JOHN",
        StudyDate="20240105",
        AccessionNumber="ACC1",
        StudyDescription="CT Chest without contrast",
    ),
    "1.2": dict(
        PatientID="PAT-2",
        PatientName="DOE^JANE",
        StudyDate="20240220",
        AccessionNumber="ACC2",
        StudyDescription="MR Brain",
    ),
    "1.3": dict(
        PatientID="PAT_3%",
        PatientName="SMITH^A[1]",
        StudyDate="",
        AccessionNumber="ACC3",
        StudyDescription="Abdomen",
    ),
    "1.4": dict(
        PatientID="pat-1",
        PatientName="MÜLLER^JÜRGEN",
        StudyDate="20231231",
        AccessionNumber="",
        StudyDescription="",
    ),
}
# series UID -> (study UID, series fields, number of instances)
SERIES: dict[str, tuple[str, dict[str, Any], int]] = {
    "1.1.1": (
        "1.1",
        dict(Modality="CT", BodyPartExamined="CHEST", SeriesDescription="Lung 1mm"),
        3,
    ),
    "1.1.2": ("1.1", dict(Modality="SR", SeriesDescription="Dose report"), 1),
    "1.2.1": ("1.2", dict(Modality="MR", BodyPartExamined="HEAD", SeriesDescription="T1 axial"), 2),
    "1.2.2": ("1.2", dict(Modality="MR", BodyPartExamined="HEAD", SeriesDescription="T2 flair"), 2),
    "1.3.1": (
        "1.3",
        dict(Modality="CT", BodyPartExamined="ABDOMEN", SeriesDescription="100% dose"),
        2,
    ),
    "1.4.1": ("1.4", dict(Modality="PT", SeriesDescription="Whole body FDG"), 1),
}


def instances_of_data_set(make: Callable[..., InstanceRecord]) -> list[InstanceRecord]:
    records = []
    for series_uid, (study_uid, series_fields, count) in SERIES.items():
        for number in range(1, count + 1):
            records.append(
                make(
                    f"{series_uid}.{number}",
                    series_uid,
                    study_uid,
                    InstanceNumber=number,
                    **STUDIES[study_uid],
                    **series_fields,
                )
            )
    return records


@pytest.fixture
def data_set(index: MetadataIndex, make_instance: Callable[..., InstanceRecord]) -> MetadataIndex:
    assert index.upsert_instances(instances_of_data_set(make_instance)) == 11
    return index


ALL = ["1.1", "1.2", "1.3", "1.4"]
# (query fields, matching studies in study order: StudyDate, then UID; "" dates first)
STUDY_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, ["1.3", "1.4", "1.1", "1.2"]),
    # PatientID: case-sensitive, wildcards, literal % _ [ ]
    (dict(PatientID="PAT-1"), ["1.1"]),
    (dict(PatientID="pat-1"), ["1.4"]),
    (dict(PatientID="PAT-?"), ["1.1", "1.2"]),
    (dict(PatientID="PAT*"), ["1.3", "1.1", "1.2"]),
    (dict(PatientID="PAT_3%"), ["1.3"]),
    (dict(PatientID="PAT_*"), ["1.3"]),
    (dict(PatientID="PAT?3%"), ["1.3"]),
    (dict(PatientID="PAT%"), []),
    (dict(PatientID="*"), ["1.3", "1.4", "1.1", "1.2"]),
    # PatientName: ASCII case ignored, wildcards, literal [ and _
    (dict(PatientName="DOE^J*"), ["1.1", "1.2"]),
    (dict(PatientName="doe^jane"), ["1.2"]),
    (dict(PatientName="*JANE"), ["1.2"]),
    (dict(PatientName="DOE^JOH?"), ["1.1"]),
    (dict(PatientName="DOE_JOHN"), []),
    (dict(PatientName="DOE%"), []),
    (dict(PatientName="SMITH^A[1]"), ["1.3"]),
    (dict(PatientName="SMITH^A[*"), ["1.3"]),
    (dict(PatientName="MÜLLER*"), ["1.4"]),
    # StudyDate: exact and ranges, bounds included; no date matches no range
    (dict(StudyDate="20240105"), ["1.1"]),
    (dict(StudyDate="20240105-20240220"), ["1.1", "1.2"]),
    (dict(StudyDate="20240106-"), ["1.2"]),
    (dict(StudyDate="-20240105"), ["1.4", "1.1"]),
    (dict(StudyDate="20231231-20231231"), ["1.4"]),
    # Series-level fields: a study matches when one of its series does
    (dict(Modality="CT"), ["1.3", "1.1"]),
    (dict(Modality="SR"), ["1.1"]),
    (dict(Modality="M?"), ["1.2"]),
    (dict(Modality="ct"), []),
    (dict(BodyPartExamined="HEAD"), ["1.2"]),
    (dict(Modality="SR", BodyPartExamined="CHEST"), []),  # both on the same series
    (dict(AccessionNumber="ACC2"), ["1.2"]),
    (dict(AccessionNumber="ACC*"), ["1.3", "1.1", "1.2"]),
    # UID lists
    (dict(StudyInstanceUID=["1.1", "1.3", "9.9"]), ["1.3", "1.1"]),
    (dict(SeriesInstanceUID=["1.2.2"]), ["1.2"]),
    (dict(SOPInstanceUID=["1.4.1.1", "1.1.2.1"]), ["1.4", "1.1"]),
    # Free text: every word starts a word of a series' descriptions or patient name
    (dict(text="lung"), ["1.1"]),
    (dict(text="CHEST"), ["1.1"]),
    (dict(text="brain t1"), ["1.2"]),
    (dict(text="jane"), ["1.2"]),
    (dict(text="dose"), ["1.3", "1.1"]),
    (dict(text="muller"), ["1.4"]),
    (dict(text="abd"), ["1.3"]),
    (dict(text="lung brain"), []),
    (dict(text='"chest (*'), ["1.1"]),  # FTS syntax is taken as plain words
    (dict(text="chest OR brain"), []),
    # Combinations
    (dict(PatientID="PAT*", Modality="CT", StudyDate="20240101-"), ["1.1"]),
    (dict(PatientName="DOE*", text="flair"), ["1.2"]),
]
# Orders of studies: empty values are the smallest; ties (none here) by UID.
ORDER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    (dict(order="-StudyDate"), ["1.2", "1.1", "1.4", "1.3"]),
    (dict(order="-StudyDate", limit=2, offset=1), ["1.1", "1.4"]),
    (dict(order="-StudyDate", Modality="CT"), ["1.1", "1.3"]),  # through their series
    (dict(order="PatientName"), ["1.2", "1.1", "1.4", "1.3"]),
    (dict(order="-PatientID"), ["1.4", "1.3", "1.2", "1.1"]),
    (dict(order="-AccessionNumber", text="dose"), ["1.3", "1.1"]),
    (dict(order="AccessionNumber"), ["1.4", "1.1", "1.2", "1.3"]),
]


@pytest.mark.parametrize(
    ("fields", "expected"),
    STUDY_CASES + ORDER_CASES,
    ids=[str(c[0]) for c in STUDY_CASES + ORDER_CASES],
)
def test_find_studies(data_set: MetadataIndex, fields: dict[str, Any], expected: list[str]) -> None:
    assert [s.StudyInstanceUID for s in data_set.find_studies(Query(**fields))] == expected


@pytest.mark.parametrize(("fields", "expected"), STUDY_CASES, ids=[str(c[0]) for c in STUDY_CASES])
def test_levels_agree(data_set: MetadataIndex, fields: dict[str, Any], expected: list[str]) -> None:
    """Matching series belong to exactly the matching studies, matching instances to exactly
    the matching series."""
    series = data_set.find_series(Query(**fields))
    instances = data_set.find_instances(Query(**fields))
    assert {s.StudyInstanceUID for s in series} == set(expected)
    assert {i.SeriesInstanceUID for i in instances} == {s.SeriesInstanceUID for s in series}


SERIES_CASES: list[tuple[dict[str, Any], list[str]]] = [
    (dict(Modality="CT"), ["1.1.1", "1.3.1"]),
    (dict(Modality="MR", text="flair"), ["1.2.2"]),
    (dict(PatientID="PAT-2"), ["1.2.1", "1.2.2"]),
    (dict(text="chest"), ["1.1.1", "1.1.2"]),  # the study's description is each series' text
    (dict(SOPInstanceUID=["1.1.2.1"]), ["1.1.2"]),
    (dict(SeriesInstanceUID=["1.2.1", "1.4.1"], BodyPartExamined="HEAD"), ["1.2.1"]),
]


@pytest.mark.parametrize(
    ("fields", "expected"), SERIES_CASES, ids=[str(c[0]) for c in SERIES_CASES]
)
def test_find_series(data_set: MetadataIndex, fields: dict[str, Any], expected: list[str]) -> None:
    assert [s.SeriesInstanceUID for s in data_set.find_series(Query(**fields))] == expected


def test_find_instances(data_set: MetadataIndex) -> None:
    found = data_set.find_instances(Query(Modality="MR"))
    assert [i.SOPInstanceUID for i in found] == ["1.2.1.1", "1.2.1.2", "1.2.2.1", "1.2.2.2"]
    assert [i.SOPInstanceUID for i in data_set.find_instances(Query(PatientID="PAT_3%"))] == [
        "1.3.1.1",
        "1.3.1.2",
    ]


def test_series_record_carries_study_fields(data_set: MetadataIndex) -> None:
    (series,) = data_set.find_series(Query(SeriesInstanceUID=["1.1.1"]))
    assert (series.PatientID, series.PatientName, series.StudyDate) == (
        "PAT-1",
        "DOE^JOHN",
        "20240105",
    )
    assert (series.StudyDescription, series.AccessionNumber) == (
        "CT Chest without contrast",
        "ACC1",
    )
    assert (series.Modality, series.BodyPartExamined, series.SeriesDescription) == (
        "CT",
        "CHEST",
        "Lung 1mm",
    )


@pytest.mark.parametrize(
    "fields",
    [
        dict(StudyDate="2024"),
        dict(StudyDate="2024-01-05"),
        dict(StudyDate="20240301-20240101"),
        dict(StudyDate="-"),
        dict(limit=-1),
        dict(offset=-5),
    ],
    ids=str,
)
def test_bad_queries_are_refused_with_a_reason(
    index: MetadataIndex, fields: dict[str, Any]
) -> None:
    for find in (index.find_studies, index.find_series, index.find_instances):
        with pytest.raises(InvalidQuery, match=r"\S"):
            find(Query(**fields))


@pytest.mark.parametrize("order", ["StudyDescription", "-", "studydate", "StudyDate; DROP"])
def test_unknown_orders_are_refused_naming_the_known_ones(
    data_set: MetadataIndex, order: str
) -> None:
    with pytest.raises(InvalidQuery, match="by one of StudyDate, PatientName"):
        data_set.find_studies(Query(order=order))


def test_parse_date_range() -> None:
    assert parse_date_range("") == (None, None)
    assert parse_date_range("20240101") == ("20240101", "20240101")
    assert parse_date_range("20240101-") == ("20240101", None)
    assert parse_date_range("-20240101") == (None, "20240101")
    assert parse_date_range("20240101-20240202") == ("20240101", "20240202")


# -- paging -------------------------------------------------------------------------------------


def test_paging_is_stable_and_complete(index: MetadataIndex, make_instance: Any) -> None:
    records = [
        make_instance(f"9.{n}.1.1", f"9.{n}.1", f"9.{n}", StudyDate=f"2024010{n % 3 + 1}")
        for n in range(25)
    ]
    index.upsert_instances(records)
    everything = [s.StudyInstanceUID for s in index.find_studies(Query())]
    assert len(everything) == 25
    assert everything == [
        s.StudyInstanceUID
        for s in sorted(
            index.find_studies(Query()), key=lambda s: (s.StudyDate, s.StudyInstanceUID)
        )
    ]
    pages = [
        [s.StudyInstanceUID for s in index.find_studies(Query(limit=10, offset=offset))]
        for offset in (0, 10, 20, 30)
    ]
    assert [len(p) for p in pages] == [10, 10, 5, 0]
    assert [uid for page in pages for uid in page] == everything
    assert [s.StudyInstanceUID for s in index.find_studies(Query(offset=20))] == everything[20:]
    assert index.find_studies(Query(limit=0)) == []
    series_pages = [index.find_series(Query(limit=7, offset=o)) for o in (0, 7, 14, 21)]
    assert [s.SeriesInstanceUID for page in series_pages for s in page] == [
        s.SeriesInstanceUID for s in index.find_series(Query())
    ]
    instance_page = index.find_instances(Query(limit=3, offset=22))
    assert [i.SOPInstanceUID for i in instance_page] == [
        i.SOPInstanceUID for i in index.find_instances(Query())
    ][22:]


def test_numbers_order_numerically(index: MetadataIndex, make_instance: Any) -> None:
    for series_number in (10, 2, 1):
        for instance_number in (10, 9, 1):
            index.upsert_instance(
                make_instance(
                    f"5.{series_number}.{instance_number}",
                    f"5.{series_number}",
                    "5",
                    SeriesNumber=series_number,
                    InstanceNumber=instance_number,
                )
            )
    assert [s.SeriesNumber for s in index.find_series(Query())] == [1, 2, 10]
    assert [i.InstanceNumber for i in index.find_instances(Query(SeriesInstanceUID=["5.2"]))] == [
        1,
        9,
        10,
    ]


# -- writing, counts and headers ----------------------------------------------------------------

HEADER = {
    "00080060": {"vr": "CS", "Value": ["CT"]},
    "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Müller^Jürgen"}]},
    "00200032": {"vr": "DS", "Value": [-125.5, -100, 42.25]},
    "00280010": {"vr": "US", "Value": [512]},
    "00081115": {"vr": "SQ", "Value": [{"0020000E": {"vr": "UI", "Value": ["1.2.3"]}}]},
    "7FE00010": {"vr": "OW", "BulkDataURI": "instances/1/frames"},
}


def test_header_round_trip(index: MetadataIndex, make_instance: Any) -> None:
    record = make_instance("1", "2", "3", header=HEADER, PatientName="Müller^Jürgen")
    index.upsert_instance(record)
    assert index.get_instance("1") == record
    (with_header,) = index.find_instances(Query(), with_header=True)
    assert with_header.header == HEADER
    (without,) = index.find_instances(Query())
    assert without.header == {}
    assert without.to_dict() == record.to_dict()
    assert index.get_instance("nope") is None


def test_header_texts_are_the_headers_with_peeked_values(
    index: MetadataIndex, make_instance: Any
) -> None:
    index.upsert_instance(make_instance("1", "2", "3", header=HEADER, InstanceNumber=1))
    index.upsert_instance(make_instance("4", "2", "3", InstanceNumber=2))
    peek = ("00280010", "00200032", "00100010", "00280100")
    first, second = index.find_header_texts(Query(StudyInstanceUID=["3"]), peek)
    assert json.loads(first.json) == HEADER
    assert first.peeked == {
        "00280010": 512,
        "00200032": -125.5,
        "00100010": {"Alphabetic": "Müller^Jürgen"},
        "00280100": None,
    }
    assert (json.loads(second.json), second.peeked) == ({}, dict.fromkeys(peek))
    assert first.record == index.find_instances(Query(SOPInstanceUID=["1"]))[0]
    # A backend's own answer is the one the interface's generic answer gives.
    generic = MetadataIndex.find_header_texts(index, Query(), peek)
    assert [(json.loads(h.json), h.peeked, h.record) for h in generic] == [
        (json.loads(h.json), h.peeked, h.record) for h in index.find_header_texts(Query(), peek)
    ]
    with pytest.raises(InvalidQuery, match="DICOM JSON tag"):
        index.find_header_texts(Query(), ['0028") OR 1=1 --'])


def test_upsert_is_idempotent(index: MetadataIndex, make_instance: Any) -> None:
    records = [make_instance(f"1.{n}", "2", "3", Modality="CT") for n in range(5)]
    assert index.upsert_instances(records) == 5
    assert index.upsert_instances(records) == 0
    assert index.upsert_instance(records[0]) is False
    assert index.upsert_instances([]) == 0
    assert len(index.find_instances(Query())) == 5
    (series,) = index.find_series(Query())
    assert (series.NumberOfSeriesRelatedInstances, series.size) == (5, 5000)
    (study,) = index.find_studies(Query())
    assert (study.NumberOfStudyRelatedSeries, study.NumberOfStudyRelatedInstances) == (1, 5)


def test_a_batch_may_repeat_an_instance(index: MetadataIndex, make_instance: Any) -> None:
    record = make_instance("1", "2", "3")
    assert index.upsert_instances([record, record]) == 1
    (series,) = index.find_series(Query())
    assert series.NumberOfSeriesRelatedInstances == 1


def counts(index: MetadataIndex) -> dict[str, Any]:
    """Every count and bound the index keeps, keyed by UID."""
    return {
        **{
            s.SeriesInstanceUID: (
                s.NumberOfSeriesRelatedInstances,
                s.size,
                s.first_received_at,
                s.last_received_at,
            )
            for s in index.find_series(Query())
        },
        **{
            s.StudyInstanceUID: (
                s.NumberOfStudyRelatedSeries,
                s.NumberOfStudyRelatedInstances,
                s.ModalitiesInStudy,
                s.last_received_at,
            )
            for s in index.find_studies(Query())
        },
    }


def test_counts_follow_receive_re_receive_and_delete(
    index: MetadataIndex, make_instance: Any
) -> None:
    ct = [
        make_instance(f"1.{n}", "S-CT", "ST", Modality="CT", received_at=100.0 + n)
        for n in range(3)
    ]
    sr = make_instance("2.0", "S-SR", "ST", Modality="SR", size=50, received_at=110.0)
    index.upsert_instances([*ct, sr])
    assert counts(index) == {
        "S-CT": (3, 3000, 100.0, 102.0),
        "S-SR": (1, 50, 110.0, 110.0),
        "ST": (2, 4, ["CT", "SR"], 110.0),
    }
    # Re-received with another size and a later time: same counts, new size and bounds.
    index.upsert_instance(
        make_instance("1.0", "S-CT", "ST", Modality="CT", size=400, received_at=120.0)
    )
    assert counts(index) == {
        "S-CT": (3, 2400, 101.0, 120.0),
        "S-SR": (1, 50, 110.0, 110.0),
        "ST": (2, 4, ["CT", "SR"], 120.0),
    }
    # Re-received with an earlier time (as a rebuild may do): the bounds stay exact.
    index.upsert_instance(
        make_instance("1.0", "S-CT", "ST", Modality="CT", size=400, received_at=90.0)
    )
    assert counts(index)["S-CT"] == (3, 2400, 90.0, 102.0)
    assert counts(index)["ST"] == (2, 4, ["CT", "SR"], 110.0)
    # Deleting the latest instance of a series moves its bound back.
    assert index.delete_instance("1.2") is True
    assert counts(index)["S-CT"] == (2, 1400, 90.0, 101.0)
    # Deleting the last instance of a series removes the series and its modality.
    assert index.delete_instance("2.0") is True
    assert counts(index) == {"S-CT": (2, 1400, 90.0, 101.0), "ST": (1, 2, ["CT"], 101.0)}
    assert index.delete_instance("2.0") is False
    assert index.get_instance("2.0") is None
    # Deleting the last instance of a study removes the study.
    index.delete_instance("1.0")
    index.delete_instance("1.1")
    assert counts(index) == {}
    assert index.find_instances(Query()) == []


def test_re_receive_into_another_series_moves_the_instance(
    index: MetadataIndex, make_instance: Any
) -> None:
    index.upsert_instances(
        [
            make_instance("1", "A", "ST", received_at=1.0),
            make_instance("2", "A", "ST", received_at=2.0),
        ]
    )
    assert index.upsert_instance(make_instance("2", "B", "ST2", received_at=3.0)) is True
    assert counts(index) == {
        "A": (1, 1000, 1.0, 1.0),
        "B": (1, 1000, 3.0, 3.0),
        "ST": (1, 1, [], 1.0),
        "ST2": (1, 1, [], 3.0),
    }


def test_latest_non_empty_value_wins(index: MetadataIndex, make_instance: Any) -> None:
    index.upsert_instance(
        make_instance("1", "A", "ST", PatientName="DOE^JON", StudyDescription="Chest")
    )
    index.upsert_instance(make_instance("2", "B", "ST", PatientName="", StudyDescription=""))
    (study,) = index.find_studies(Query())
    assert (study.PatientName, study.StudyDescription) == ("DOE^JON", "Chest")
    index.upsert_instance(make_instance("3", "B", "ST", PatientName="DOE^JOHN"))
    assert [s.PatientName for s in index.find_studies(Query())] == ["DOE^JOHN"]
    assert index.find_studies(Query(text="jon")) == []
    assert len(index.find_series(Query(text="john chest"))) == 2


def test_series_fields_follow_later_instances(index: MetadataIndex, make_instance: Any) -> None:
    index.upsert_instance(make_instance("1", "A", "ST", Modality="", SeriesDescription=""))
    index.upsert_instance(make_instance("2", "A", "ST", Modality="CT", SeriesDescription="Axial"))
    index.upsert_instance(make_instance("3", "A", "ST", Modality="CT", SeriesDescription=""))
    (series,) = index.find_series(Query(Modality="CT"))
    assert (series.SeriesDescription, series.NumberOfSeriesRelatedInstances) == ("Axial", 3)
    assert len(index.find_series(Query(text="axial"))) == 1


@pytest.mark.parametrize(
    "record",
    [
        InstanceRecord("", "2", "3"),
        InstanceRecord("1", "", "3"),
        InstanceRecord("1", "2", ""),
    ],
    ids=["no-sop", "no-series", "no-study"],
)
def test_records_without_uids_are_refused(index: MetadataIndex, record: InstanceRecord) -> None:
    with pytest.raises(InvalidRecord, match="without"):
        index.upsert_instance(record)
    assert index.find_instances(Query()) == []


def test_a_series_cannot_change_study(index: MetadataIndex, make_instance: Any) -> None:
    index.upsert_instance(make_instance("1", "A", "ST"))
    with pytest.raises(InvalidRecord, match="belongs to study ST"):
        index.upsert_instances([make_instance("9", "Z", "ST"), make_instance("2", "A", "OTHER")])
    # The whole batch was refused.
    assert [i.SOPInstanceUID for i in index.find_instances(Query())] == ["1"]


def test_clear(index: MetadataIndex, make_instance: Any) -> None:
    index.upsert_instance(make_instance("1", "2", "3", StudyDescription="x"))
    index.clear()
    assert index.find_studies(Query()) == []
    assert index.find_series(Query(text="x")) == []
    assert index.find_instances(Query()) == []
    assert index.upsert_instance(make_instance("1", "2", "3")) is True


def test_check_passes_on_a_healthy_index(index: MetadataIndex) -> None:
    index.check()


# -- run outputs (non-DICOM results of analysis steps) -----------------------------------------


def run_output(workflow: str, run_id: str, step: str, series: str, name: str) -> RunOutput:
    return RunOutput(
        object_key=f"runs/{workflow}/{run_id}/{step}/{series or 'all'}/{name}",
        workflow=workflow,
        run_id=run_id,
        step=step,
        SeriesInstanceUID=series,
        size=len(name),
        created_at=1_700_000_000.5,
    )


RUN_OUTPUTS = [
    run_output("seg", "r2", "mask", "1.2.1", "mask.nii.gz"),
    run_output("seg", "r1", "mask", "1.1.1", "mask.nii.gz"),
    run_output("seg", "r1", "stats", "1.1.1", "volumes.json"),
    run_output("seg", "r1", "report", "", "summary.csv"),
    run_output("count", "r1", "count", "1.1.1", "count.json"),
]


def keys(outputs: list[RunOutput]) -> list[str]:
    return [o.object_key for o in outputs]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, sorted(o.object_key for o in RUN_OUTPUTS)),
        (dict(workflow="seg"), sorted(o.object_key for o in RUN_OUTPUTS[:4])),
        (
            dict(workflow="seg", run_id="r1"),
            [
                "runs/seg/r1/mask/1.1.1/mask.nii.gz",
                "runs/seg/r1/report/all/summary.csv",
                "runs/seg/r1/stats/1.1.1/volumes.json",
            ],
        ),
        (
            dict(series_instance_uid="1.1.1"),
            [
                "runs/count/r1/count/1.1.1/count.json",
                "runs/seg/r1/mask/1.1.1/mask.nii.gz",
                "runs/seg/r1/stats/1.1.1/volumes.json",
            ],
        ),
        (
            dict(run_id="r1", series_instance_uid="1.1.1", workflow="count"),
            ["runs/count/r1/count/1.1.1/count.json"],
        ),
        (dict(workflow="se"), []),
        (dict(run_id="R1"), []),
    ],
    ids=str,
)
def test_find_run_outputs(
    index: MetadataIndex, fields: dict[str, str], expected: list[str]
) -> None:
    index.add_run_outputs(RUN_OUTPUTS[:2])
    index.add_run_outputs(RUN_OUTPUTS[2:])
    assert keys(index.find_run_outputs(**fields)) == expected


def test_run_outputs_round_trip(index: MetadataIndex) -> None:
    assert index.find_run_outputs() == []
    index.add_run_outputs(RUN_OUTPUTS)
    assert index.find_run_outputs(workflow="seg", run_id="r1", series_instance_uid="") == sorted(
        RUN_OUTPUTS[1:4], key=lambda o: o.object_key
    )


def test_recording_an_object_key_again_replaces_it(index: MetadataIndex) -> None:
    index.add_run_outputs(RUN_OUTPUTS)
    again = RunOutput(**{**RUN_OUTPUTS[0].to_dict(), "size": 99, "created_at": 1_800_000_000.0})
    index.add_run_outputs([again])
    assert index.find_run_outputs(run_id="r2") == [again]
    assert len(index.find_run_outputs()) == len(RUN_OUTPUTS)


def test_clear_forgets_run_outputs(index: MetadataIndex) -> None:
    index.add_run_outputs(RUN_OUTPUTS)
    index.clear()
    assert index.find_run_outputs() == []
    index.add_run_outputs(RUN_OUTPUTS[:1])
    assert index.find_run_outputs() == RUN_OUTPUTS[:1]


# -- completion ---------------------------------------------------------------------------------


def test_idle_series_and_completion(index: MetadataIndex, make_instance: Any) -> None:
    index.upsert_instances(
        [
            make_instance("1", "OLD", "ST", received_at=10.0),
            make_instance("2", "NEW", "ST", received_at=50.0),
        ]
    )
    assert [s.SeriesInstanceUID for s in index.idle_series(20.0)] == ["OLD"]
    assert [s.SeriesInstanceUID for s in index.idle_series(60.0)] == ["OLD", "NEW"]
    assert index.mark_series_complete("OLD", 9.0) is None  # another instance arrived since
    done = index.mark_series_complete("OLD", 10.0)
    assert done is not None
    assert (done.SeriesInstanceUID, done.complete, done.version) == ("OLD", True, 1)
    assert index.mark_series_complete("OLD", 10.0) is None  # already complete
    assert [s.SeriesInstanceUID for s in index.idle_series(60.0)] == ["NEW"]
    assert index.mark_series_complete("NOPE", 10.0) is None

    # Re-receiving an instance it has does not reopen a complete series ...
    index.upsert_instance(make_instance("1", "OLD", "ST", received_at=70.0))
    (old,) = index.find_series(Query(SeriesInstanceUID=["OLD"]))
    assert (old.complete, old.version) == (True, 1)
    # ... a new instance does, keeping the version until the next completion.
    index.upsert_instance(make_instance("3", "OLD", "ST", received_at=80.0))
    (old,) = index.find_series(Query(SeriesInstanceUID=["OLD"]))
    assert (old.complete, old.version, old.NumberOfSeriesRelatedInstances) == (False, 1, 2)
    assert index.mark_series_complete("OLD", 70.0) is None
    again = index.mark_series_complete("OLD", 80.0)
    assert again is not None
    assert (again.version, again.NumberOfSeriesRelatedInstances) == (2, 2)


def test_completion_has_one_winner_among_threads(backend: Any, make_instance: Any) -> None:
    first = backend.open()
    first.upsert_instance(make_instance("1", "S", "ST", received_at=5.0))
    handles = [first, backend.open()]
    barrier = threading.Barrier(8)
    results: list[Any] = []

    def sweep(handle: MetadataIndex) -> None:
        barrier.wait()
        results.append(handle.mark_series_complete("S", 5.0))

    threads = [threading.Thread(target=sweep, args=(handles[n % 2],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results if r is not None]
    assert len(results) == 8
    assert len(winners) == 1
    assert winners[0].version == 1
    for handle in handles:
        handle.close()


def test_completion_has_one_winner_among_processes(
    backend: Any, make_instance: Any, run_workers: Any
) -> None:
    handle = backend.open()
    handle.upsert_instance(make_instance("1", "S", "ST", received_at=5.0))
    outputs = run_workers(backend, [["complete", "S", "5.0"]] * 4)
    assert sorted(outputs) == ["False", "False", "False", "True"]
    (series,) = handle.find_series(Query())
    assert (series.complete, series.version) == (True, 1)
    handle.close()


def test_processes_writing_at_once_lose_nothing(backend: Any, run_workers: Any) -> None:
    """Four processes upsert into the same series at once, on an index none has created yet."""
    outputs = run_workers(backend, [["upsert", f"7.{p}", "150", "3"] for p in range(4)])
    assert outputs == ["150"] * 4
    handle = backend.open()
    assert len(handle.find_instances(Query())) == 600
    series = handle.find_series(Query())
    assert {s.SeriesInstanceUID: s.NumberOfSeriesRelatedInstances for s in series} == {
        "2.0": 200,
        "2.1": 200,
        "2.2": 200,
    }
    assert sum(s.size for s in series) == 6000
    studies = handle.find_studies(Query())
    assert {s.StudyInstanceUID: s.NumberOfStudyRelatedInstances for s in studies} == {
        "3.0": 400,
        "3.1": 200,
    }
    assert {s.StudyInstanceUID: s.NumberOfStudyRelatedSeries for s in studies} == {
        "3.0": 2,
        "3.1": 1,
    }
    handle.close()


# -- projects -----------------------------------------------------------------------------------


def test_projects_partition_studies_and_series_and_instances_inherit(
    index: MetadataIndex, make_instance: Callable[..., InstanceRecord]
) -> None:
    index.upsert_instances(
        [
            make_instance("9.1.1.1", "9.1.1", "9.1", projects=["p1"]),
            make_instance("9.2.1.1", "9.2.1", "9.2", projects=["p2"]),
            make_instance("9.3.1.1", "9.3.1", "9.3"),  # default
        ]
    )
    assert [s.StudyInstanceUID for s in index.find_studies(Query(projects=["p1"]))] == ["9.1"]
    assert {s.StudyInstanceUID for s in index.find_studies(Query(projects=["p2", "default"]))} == {
        "9.2",
        "9.3",
    }
    assert len(index.find_studies(Query())) == 3
    assert index.find_studies(Query(projects=["nobody"])) == []
    (series,) = index.find_series(Query(projects=["p2"]))
    assert (series.SeriesInstanceUID, series.projects) == ("9.2.1", ["p2"])
    (instance,) = index.find_instances(Query(projects=["p1"]))
    assert (instance.SOPInstanceUID, instance.projects) == ("9.1.1.1", ["p1"])
    assert index.find_instances(Query(projects=["p1"], SOPInstanceUID=["9.2.1.1"])) == []

    # A study that gets an instance of another project belongs to both.
    index.upsert_instance(make_instance("9.1.2.1", "9.1.2", "9.1", projects=["p2"]))
    (study,) = index.find_studies(Query(StudyInstanceUID=["9.1"]))
    assert study.projects == ["p1", "p2"]
    assert {s.SeriesInstanceUID for s in index.find_series(Query(projects=["p2"]))} == {
        "9.1.1",
        "9.1.2",
        "9.2.1",
    }


def test_an_admin_adds_and_moves_a_study_between_projects(
    index: MetadataIndex, make_instance: Callable[..., InstanceRecord]
) -> None:
    index.upsert_instance(make_instance("9.1.1.1", "9.1.1", "9.1"))
    assert index.set_study_projects("9.1", ["p1"]) is True
    (study,) = index.find_studies(Query(projects=["p1"]))
    assert study.projects == ["default", "p1"]
    assert index.set_study_projects("9.1", ["p3"], replace=True) is True
    assert index.find_studies(Query(projects=["p1"])) == []
    assert [s.SeriesInstanceUID for s in index.find_series(Query(projects=["p3"]))] == ["9.1.1"]
    assert index.get_instance("9.1.1.1").projects == ["p3"]  # type: ignore[union-attr]
    assert index.set_study_projects("9.9", ["p1"]) is False
    # Deleting the last instance forgets the study's projects with it.
    assert index.delete_instance("9.1.1.1")
    index.upsert_instance(make_instance("9.1.1.1", "9.1.1", "9.1"))
    assert index.find_studies(Query(projects=["p3"])) == []
