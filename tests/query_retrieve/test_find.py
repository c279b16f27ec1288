"""C-FIND SCP with dcmtk findscu (Study Root and Patient Root, every level) and pynetdicom
(C-CANCEL, refused identifiers on a live association)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)
from qr_peers import find

from openjip.index import InstanceRecord
from openjip.index.sqlite import SQLiteIndex

PHANTOM_SLICES = 24
BACKSLASH = "\\"


def patients(responses: list[Dataset]) -> list[str]:
    return sorted(str(r.PatientID) for r in responses)


def test_study_root_study_level_all_studies_with_return_keys(
    running_receiver, site_data, tmp_path: Path
) -> None:
    run, responses = find(
        running_receiver.port,
        "QueryRetrieveLevel=STUDY",
        "PatientName",
        "PatientID",
        "StudyDate",
        "StudyInstanceUID",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances",
        "NumberOfStudyRelatedSeries",
        "PatientAge",
        out_dir=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert patients(responses) == ["1CT1", "4MR1", "ID1", "PHANTOM"]
    phantom = next(r for r in responses if r.PatientID == "PHANTOM")
    assert phantom.StudyInstanceUID == site_data.phantom_study
    assert phantom.ModalitiesInStudy == "CT"
    assert int(phantom.NumberOfStudyRelatedInstances) == PHANTOM_SLICES
    assert int(phantom.NumberOfStudyRelatedSeries) == 1
    assert phantom.RetrieveAETitle == "OPENJIP"
    # An attribute openjip does not keep is returned empty, not left out.
    assert "PatientAge" in phantom and phantom.PatientAge in ("", None)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["PatientName=compressed*"], ["1CT1", "4MR1"]),  # wildcard, PN case ignored
        (["PatientName=Lestrade^?"], ["ID1"]),
        (["PatientID=4MR1"], ["4MR1"]),
        (["StudyDate=20040101-20041231"], ["1CT1", "4MR1"]),  # range
        (["StudyDate=20170101-"], ["ID1", "PHANTOM"]),
        (["StudyDate=-20040119"], ["1CT1"]),
        (["StudyDate=20170101"], ["ID1"]),
        (["ModalitiesInStudy=MR"], ["4MR1"]),
        (["ModalitiesInStudy=MR\\OT"], ["4MR1", "ID1"]),  # any of several values
        (["StudyTime=0700-0800"], ["1CT1"]),  # matched on the index's records
        (["StudyID=4MR1"], ["4MR1"]),
        (["PatientName=NOBODY*"], []),
    ],
)
def test_study_level_matching(running_receiver, site_data, tmp_path, keys, expected) -> None:
    run, responses = find(
        running_receiver.port,
        "QueryRetrieveLevel=STUDY",
        "PatientID",
        "StudyInstanceUID",
        *keys,
        out_dir=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert patients(responses) == expected


def test_list_of_study_uids(running_receiver, site_data, tmp_path: Path) -> None:
    wanted = [site_data.studies["1CT1"], site_data.studies["ID1"]]
    run, responses = find(
        running_receiver.port,
        "QueryRetrieveLevel=STUDY",
        "PatientID",
        "StudyInstanceUID=" + BACKSLASH.join(wanted),
        out_dir=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert patients(responses) == ["1CT1", "ID1"]


def test_patient_root_all_levels(running_receiver, site_data, tmp_path: Path) -> None:
    port = running_receiver.port
    run, responses = find(
        port,
        "QueryRetrieveLevel=PATIENT",
        "PatientName",
        "PatientID",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedInstances",
        root="-P",
        out_dir=tmp_path / "patients",
    )
    assert run.returncode == 0, run.stderr
    assert patients(responses) == ["1CT1", "4MR1", "ID1", "PHANTOM"]
    phantom = next(r for r in responses if r.PatientID == "PHANTOM")
    assert int(phantom.NumberOfPatientRelatedStudies) == 1
    assert int(phantom.NumberOfPatientRelatedInstances) == PHANTOM_SLICES

    run, responses = find(
        port,
        "QueryRetrieveLevel=STUDY",
        "PatientID=PHANTOM",
        "StudyInstanceUID",
        root="-P",
        out_dir=tmp_path / "studies",
    )
    assert [r.StudyInstanceUID for r in responses] == [site_data.phantom_study]

    run, responses = find(
        port,
        "QueryRetrieveLevel=SERIES",
        "PatientID=PHANTOM",
        f"StudyInstanceUID={site_data.phantom_study}",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "NumberOfSeriesRelatedInstances",
        "PatientBirthDate",
        root="-P",
        out_dir=tmp_path / "series",
    )
    assert run.returncode == 0, run.stderr
    assert [r.SeriesInstanceUID for r in responses] == [site_data.phantom_series]
    assert responses[0].Modality == "CT"
    assert int(responses[0].NumberOfSeriesRelatedInstances) == PHANTOM_SLICES

    run, responses = find(
        port,
        "QueryRetrieveLevel=IMAGE",
        "PatientID=PHANTOM",
        f"StudyInstanceUID={site_data.phantom_study}",
        f"SeriesInstanceUID={site_data.phantom_series}",
        "SOPInstanceUID",
        "InstanceNumber",
        root="-P",
        out_dir=tmp_path / "images",
    )
    assert run.returncode == 0, run.stderr
    assert len(responses) == PHANTOM_SLICES
    assert sorted(int(r.InstanceNumber) for r in responses) == list(range(1, 25))


def test_image_level_keys_from_the_stored_header(running_receiver, site_data, tmp_path) -> None:
    uids = sorted(site_data.files)[:2]
    run, responses = find(
        running_receiver.port,
        "QueryRetrieveLevel=IMAGE",
        "SOPInstanceUID=" + BACKSLASH.join(uids),  # list of UIDs
        "Rows",
        "SOPClassUID",
        "ImageType",
        out_dir=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(r.SOPInstanceUID for r in responses) == uids
    for response in responses:
        original = dcmread(site_data.files[response.SOPInstanceUID])
        assert response.Rows == original.Rows
        assert response.SOPClassUID == original.SOPClassUID


def test_series_level_of_study_root_with_wildcard_and_number(
    running_receiver, site_data, tmp_path
) -> None:
    run, responses = find(
        running_receiver.port,
        "QueryRetrieveLevel=SERIES",
        "Modality=?T",
        "SeriesNumber=1",
        "SeriesInstanceUID",
        "StudyInstanceUID",
        out_dir=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(r.StudyInstanceUID for r in responses) == sorted(
        [site_data.studies["1CT1"], site_data.studies["ID1"], site_data.phantom_study]
    )


@pytest.mark.parametrize(
    ("model", "identifier", "status", "comment"),
    [
        (
            StudyRootQueryRetrieveInformationModelFind,
            {"PatientID": ""},
            0xA900,
            "QueryRetrieveLevel",
        ),
        (
            StudyRootQueryRetrieveInformationModelFind,
            {"QueryRetrieveLevel": "PATIENT"},
            0xA900,
            "level PATIENT",
        ),
        (
            PatientRootQueryRetrieveInformationModelFind,
            {"QueryRetrieveLevel": "FRAME"},
            0xA900,
            "level FRAME",
        ),
        (
            StudyRootQueryRetrieveInformationModelFind,
            {"QueryRetrieveLevel": "STUDY", "StudyDate": "20241301-2024"},
            0xC000,
            "StudyDate",
        ),
        (
            StudyRootQueryRetrieveInformationModelFind,
            {"QueryRetrieveLevel": "STUDY", "StudyTime": "25x"},
            0xC000,
            "StudyTime",
        ),
    ],
)
def test_bad_identifiers_get_a_status_and_the_association_lives_on(
    running_receiver, site_data, model, identifier, status, comment
) -> None:
    ae = AE(ae_title="SCU")
    ae.acse_timeout = ae.dimse_timeout = 20
    ae.add_requested_context(model)
    assoc = ae.associate(*running_receiver.address, ae_title="OPENJIP")
    assert assoc.is_established
    try:
        query = Dataset()
        for keyword, value in identifier.items():
            setattr(query, keyword, value)
        responses = list(assoc.send_c_find(query, model))
        assert len(responses) == 1
        final, _ = responses[0]
        assert final.Status == status
        assert comment in final.ErrorComment
        # The same association still answers a good query.
        good = Dataset()
        good.QueryRetrieveLevel = (
            "STUDY" if model == StudyRootQueryRetrieveInformationModelFind else "PATIENT"
        )
        good.PatientID = ""
        statuses = [rsp.Status for rsp, _ in assoc.send_c_find(good, model)]
        assert statuses[-1] == 0x0000 and statuses.count(0xFF00) == 4
    finally:
        assoc.release()
        ae.shutdown()


def test_c_cancel_ends_the_search(running_receiver) -> None:
    """A C-CANCEL stops a search of 3,000 matches long before its end."""
    index = SQLiteIndex(running_receiver.settings.index_path)
    try:
        index.upsert_instances(
            [
                InstanceRecord(
                    SOPInstanceUID=f"1.2.3.{number}",
                    SeriesInstanceUID="1.2.3",
                    StudyInstanceUID="1.2",
                    PatientID="MANY",
                )
                for number in range(3000)
            ]
        )
    finally:
        index.close()
    ae = AE(ae_title="SCU")
    ae.acse_timeout = ae.dimse_timeout = 20
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate(*running_receiver.address, ae_title="OPENJIP")
    assert assoc.is_established
    try:
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.SOPInstanceUID = ""
        responses = assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind, msg_id=7)
        first, _ = next(responses)
        assert first.Status == 0xFF00
        # pynetdicom forgets a C-CANCEL that comes before the search starts: send it after.
        assoc.send_c_cancel(7, query_model=StudyRootQueryRetrieveInformationModelFind)
        statuses = [rsp.Status for rsp, _ in responses]
        assert statuses[-1] == 0xFE00
        assert len(statuses) < 3000
    finally:
        assoc.release()
        ae.shutdown()
