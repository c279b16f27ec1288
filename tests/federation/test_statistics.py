"""Federated statistics between sites on loopback, each with its own OPENJIP_HOME, index, web
service and federation service: counts match each site's index, cells below k are withheld at
every site, each peer's question policy is applied, unknown askers are refused, and both sides
audit the question and every answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from openjip.cli.main import app as cli_app
from openjip.config import Settings
from openjip.index import InstanceRecord, open_index
from openjip.statistics.question import Question

CHEST_CT_THIN = Question.model_validate(
    {
        "filters": {"Modality": "CT", "BodyPartExamined": "CHEST", "SliceThickness": {"max": 1.5}},
        "group_by": ["Manufacturer"],
    }
)
# Site -> (manufacturer, modality, body part, slice thickness, number of series).
HOLDINGS = {
    "b": [
        ("SIEMENS", "CT", "CHEST", 1.0, 7),
        ("GE", "CT", "CHEST", 1.0, 3),  # below k: withheld
        ("PHILIPS", "CT", "CHEST", 3.0, 6),  # too thick
        ("SIEMENS", "MR", "CHEST", 1.0, 5),  # not CT
        ("SIEMENS", "CT", "HEAD", 1.0, 5),  # not chest
    ],
    "c": [
        ("SIEMENS", "CT", "CHEST", 1.25, 5),
        ("GE", "CT", "CHEST", 0.625, 8),
        ("CANON", "CT", "CHEST", 1.0, 2),  # below k: withheld
    ],
    "a": [("SIEMENS", "CT", "CHEST", 1.0, 1)],
}


def _fill_index(settings: Settings, site: str) -> None:
    index = open_index(settings)
    records = []
    for row, (manufacturer, modality, body_part, thickness, count) in enumerate(HOLDINGS[site]):
        for number in range(count):
            uid = f"1.2.826.0.1.3680043.10.{ord(site)}.{row}.{number}"
            records.append(
                InstanceRecord(
                    SOPInstanceUID=f"{uid}.1",
                    SeriesInstanceUID=uid,
                    StudyInstanceUID=f"{uid}.0",
                    PatientID=f"{site}-patient-{row}-{number}",
                    PatientName=f"Doe^{site.upper()}{row}{number}",
                    StudyDate="20240102",
                    Modality=modality,
                    BodyPartExamined=body_part,
                    Manufacturer=manufacturer,
                    header={"00180050": {"vr": "DS", "Value": [thickness]}},
                )
            )
    index.upsert_instances(records)
    index.close()


@pytest.fixture
def statistics_site(make_site: Any, tmp_path: Path) -> Callable[..., Any]:
    """A site whose web service answers from an index holding ``HOLDINGS[name]``."""

    def factory(name: str) -> Any:
        _fill_index(Settings(home=tmp_path / name), name)
        return make_site(name)

    return factory


def _events(site: Any, *names: str) -> list[dict[str, Any]]:
    return [entry for entry in site.exchange.audit.entries() if entry["event"] in names]


def _trusting(a: Any, *others: Any, questions: str = "auto") -> None:
    for other in others:
        a.trust(other)
        other.exchange.peers.add(
            a.name,
            a.url,
            a.exchange.identity.public_key,
            questions=questions,  # type: ignore[arg-type]
        )


def test_counts_match_each_sites_index_with_small_cells_withheld(statistics_site: Any) -> None:
    a, b, c = statistics_site("a"), statistics_site("b"), statistics_site("c")
    _trusting(a, b, c)

    results = a.exchange.questions.ask(CHEST_CT_THIN, a.exchange.peers.entries())

    by_site = {result.site: result for result in results}
    assert {site: result.status for site, result in by_site.items()} == {
        "b": "answered",
        "c": "answered",
    }
    shown = {
        site: {cell.group["Manufacturer"]: cell.count for cell in result.answer.cells}
        for site, result in by_site.items()
        if result.answer
    }
    assert shown == {"b": {"SIEMENS": 7}, "c": {"GE": 8, "SIEMENS": 5}}
    assert by_site["b"].answer and by_site["b"].answer.withheld_cells == 1  # GE: 3
    assert by_site["c"].answer and by_site["c"].answer.withheld_cells == 1  # CANON: 2
    from openjip.federation.questions import combine

    assert combine(results) == [
        {"group": {"Manufacturer": "GE"}, "sites": {"c": 8}, "total": 8},
        {"group": {"Manufacturer": "SIEMENS"}, "sites": {"b": 7, "c": 5}, "total": 12},
    ]
    # Both sides audited the question and the answer.
    assert len(_events(a, "question-sent")) == 2 and len(_events(a, "answer-received")) == 2
    for peer in (b, c):
        (received,) = _events(peer, "question-received")
        (answered,) = _events(peer, "question-answered")
        assert received["details"]["peer"] == "a"
        assert answered["details"]["answer"]["cells"]
        assert peer.exchange.audit.verify_chain() == []
    # No answer names a patient, a study or a series.
    everything = json.dumps([r.answer.model_dump() for r in results if r.answer])
    assert "patient" not in everything and "1.2.826" not in everything


def test_the_asker_can_raise_k_but_not_lower_it(statistics_site: Any) -> None:
    a, b = statistics_site("a"), statistics_site("b")
    _trusting(a, b)
    lower = CHEST_CT_THIN.model_copy(update={"min_cell": 1})
    higher = CHEST_CT_THIN.model_copy(update={"min_cell": 8})

    (low,) = a.exchange.questions.ask(lower, [a.exchange.peers.get("b")])
    (high,) = a.exchange.questions.ask(higher, [a.exchange.peers.get("b")])

    assert low.answer and low.answer.min_cell == 5
    assert [cell.group["Manufacturer"] for cell in low.answer.cells] == ["SIEMENS"]
    assert high.answer and high.answer.min_cell == 8 and high.answer.cells == []
    assert high.answer.withheld_cells == 2


def test_a_manual_peer_answers_once_a_person_approves(statistics_site: Any) -> None:
    a, b = statistics_site("a"), statistics_site("b")
    _trusting(a, b, questions="manual")
    peer_b = a.exchange.peers.get("b")

    (first,) = a.exchange.questions.ask(CHEST_CT_THIN, [peer_b])
    assert first.status == "pending" and first.answer is None
    (waiting,) = b.exchange.questions.pending()
    b.exchange.questions.decide(waiting["question_id"][:6], approve=True)
    (again,) = a.exchange.questions.ask(CHEST_CT_THIN, [peer_b])

    assert again.status == "answered" and again.question_id == first.question_id
    assert again.answer and again.answer.cells[0].count == 7
    assert _events(b, "question-answered")[0]["details"]["decided_by"] == "cli"


def test_a_refusing_peer_and_an_unknown_asker_are_refused(statistics_site: Any) -> None:
    a, b = statistics_site("a"), statistics_site("b")
    stranger = statistics_site("c")
    _trusting(a, b, questions="refuse")
    stranger.trust(b)  # the stranger knows B, B does not know it

    (refused,) = a.exchange.questions.ask(CHEST_CT_THIN, [a.exchange.peers.get("b")])
    (unknown,) = stranger.exchange.questions.ask(CHEST_CT_THIN, [stranger.exchange.peers.get("b")])

    assert refused.status == "refused" and "answers no questions" in refused.message
    assert unknown.status == "refused" and "not a peer" in unknown.message
    assert _events(b, "question-refused")[0]["details"]["reason"] == "policy"
    assert not _events(b, "question-answered")
    b.service.refusals.flush()
    assert _events(b, "requests-refused")[-1]["details"]["by_reason"] == {"unknown-peer": 1}
    assert _events(stranger, "answer-received")[0]["details"]["status"] == "refused"


def test_no_answer_without_the_sites_web_service(make_site: Any) -> None:
    a, b = make_site("a"), make_site("b", web=False)
    _trusting(a, b)

    (result,) = a.exchange.questions.ask(CHEST_CT_THIN, [a.exchange.peers.get("b")])

    # Not even the question's screen can run: refused for now (503), nothing answered.
    assert result.status == "unreachable" and "cannot be screened" in result.message
    assert _events(b, "question-refused")[-1]["details"]["reason"] == "screen-unavailable"
    assert not _events(b, "question-answered")


def test_the_internal_route_needs_the_loopback_secret(statistics_site: Any) -> None:
    b = statistics_site("b")
    web_url = b.exchange.settings.site_web_url
    body = CHEST_CT_THIN.model_dump(mode="json")
    for headers in ({}, {"Authorization": "Bearer guessed"}):
        response = httpx.post(f"{web_url}/internal/v1/statistics", json=body, headers=headers)
        assert response.status_code == 401
    assert (b.home / "loopback.secret").stat().st_mode & 0o777 == 0o600


def test_cli_ask_prints_the_combined_table_and_json(statistics_site: Any) -> None:
    a, b, c = statistics_site("a"), statistics_site("b"), statistics_site("c")
    _trusting(a, b, c)
    env = {
        "OPENJIP_HOME": str(a.home),
        "OPENJIP_FEDERATION__SITE_WEB_URL": a.exchange.settings.site_web_url,
    }
    args = ["federation", "ask", "--modality", "CT", "--body-part", "CHEST"]
    args += ["--slice-thickness", "0-1.5", "--group-by", "Manufacturer"]

    table = CliRunner().invoke(cli_app, args, env=env)
    as_json = CliRunner().invoke(cli_app, [*args, "--json"], env=env)
    bad = CliRunner().invoke(cli_app, ["federation", "ask", "--group-by", "PatientID"], env=env)

    assert table.exit_code == 0, table.output
    assert "SIEMENS" in table.output and "12" in table.output
    assert as_json.exit_code == 0, as_json.output
    combined = json.loads(as_json.stdout)["combined"]
    assert {row["group"]["Manufacturer"]: row["total"] for row in combined} == {
        "GE": 8,
        "SIEMENS": 12,
    }
    assert bad.exit_code == 2 and "group_by" in bad.output
