"""``openjip federation ask`` and ``openjip federation question ...``: federated statistics —
counts of series at the peer sites, and the peers' questions waiting for this site's decision.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from pydantic import ValidationError
from rich.table import Table

from openjip.cli.environment import console, err_console, fail, load_settings
from openjip.federation.errors import FederationError
from openjip.federation.exchange import Exchange
from openjip.federation.questions import PeerAnswer, combine
from openjip.statistics.question import Question

question_app = typer.Typer(
    name="question", help="Statistics questions peers asked this site.", no_args_is_help=True
)


def _exchange() -> Exchange:
    settings = load_settings()
    return Exchange(settings.home_dir, settings.federation)


def _build_question(
    modality: str | None,
    body_part: str | None,
    manufacturer: str | None,
    study_date: str | None,
    slice_thickness: str | None,
    group_by: list[str],
    histogram: str | None,
    min_cell: int,
) -> Question:
    filters: dict[str, Any] = {
        "Modality": modality,
        "BodyPartExamined": body_part,
        "Manufacturer": manufacturer,
        "StudyDate": study_date,
    }
    if slice_thickness is not None:
        low, _, high = slice_thickness.partition("-")
        filters["SliceThickness"] = {"min": low or None, "max": high or None}
    data: dict[str, Any] = {
        "filters": {key: value for key, value in filters.items() if value is not None},
        "group_by": group_by,
        "min_cell": min_cell,
    }
    if histogram is not None:
        field, _, edges = histogram.partition(":")
        data["histogram"] = {"field": field, "edges": [e for e in edges.split(",") if e]}
    try:
        return Question.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors()
        )
        fail(f"not a valid question: {problems}", code=2)


def _print_answers(results: list[PeerAnswer], question: Question) -> None:
    sites = [result.site for result in results]
    columns = [*question.group_by, *([question.histogram.field] if question.histogram else [])]
    table = Table(*columns, *sites, "total", title="series per cell (cells below k withheld)")
    for row in combine(results):
        counts = [str(row["sites"].get(site, "")) for site in sites]
        table.add_row(*[row["group"][column] for column in columns], *counts, str(row["total"]))
    console.print(table)
    for result in results:
        withheld = result.answer.withheld_cells if result.answer else 0
        detail = f"k={result.answer.min_cell}, {withheld} cell(s) withheld" if result.answer else ""
        err_console.print(
            f"{result.site}: {result.status} {result.question_id} {detail}{result.message}"
        )


def ask(
    modality: str | None = typer.Option(None, "--modality", help="e.g. CT"),
    body_part: str | None = typer.Option(None, "--body-part", help="BodyPartExamined, e.g. CHEST"),
    manufacturer: str | None = typer.Option(None, "--manufacturer", help="Exact manufacturer."),
    study_date: str | None = typer.Option(None, "--study-date", help="e.g. 20200101-20201231"),
    slice_thickness: str | None = typer.Option(
        None, "--slice-thickness", help="mm range MIN-MAX, e.g. 0-1.5 or 2- (open above)"
    ),
    group_by: list[str] = typer.Option(
        [], "--group-by", help="Modality, BodyPartExamined, Manufacturer or StudyYear (≤ 2)."
    ),
    histogram: str | None = typer.Option(
        None, "--histogram", help="FIELD:EDGES, e.g. SliceThickness:0,1,2,5"
    ),
    min_cell: int = typer.Option(
        5, "--min-cell", help="Withhold cells below this (sites may use more)."
    ),
    peer: list[str] = typer.Option([], "--peer", help="Ask only these peers (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Ask peers how many series match, by cell, and print the combined table.

    Exit code 1 unless every peer answered.

    Example: openjip federation ask --modality CT --slice-thickness 0-1.5 --group-by Manufacturer
    """
    question = _build_question(
        modality,
        body_part,
        manufacturer,
        study_date,
        slice_thickness,
        group_by,
        histogram,
        min_cell,
    )
    exchange = _exchange()
    try:
        peers = [exchange.peers.get(name) for name in peer] or exchange.peers.entries()
        results = exchange.questions.ask(question, peers)
    except FederationError as error:
        fail(str(error))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "question": question.model_dump(mode="json"),
                    "sites": [
                        {
                            "site": r.site,
                            "status": r.status,
                            "question_id": r.question_id,
                            "answer": r.answer.model_dump(mode="json") if r.answer else None,
                            "message": r.message,
                        }
                        for r in results
                    ],
                    "combined": combine(results),
                },
                indent=2,
            )
        )
    else:
        _print_answers(results, question)
    if any(result.status != "answered" for result in results):
        raise typer.Exit(1)


@question_app.command("list")
def question_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Questions of peers waiting for this site's decision.

    Example: openjip federation question list
    """
    pending = _exchange().questions.pending()
    if as_json:
        typer.echo(json.dumps(pending, indent=2))
        return
    table = Table("id", "peer", "question")
    for record in pending:
        table.add_row(record["question_id"], record["peer"], json.dumps(record["question"]))
    console.print(table)


def _decide(identifier: str, *, approve: bool) -> None:
    try:
        record = _exchange().questions.decide(identifier, approve=approve)
    except FederationError as error:
        fail(str(error))
    console.print(f"question {record['question_id']} of {record['peer']}: {record['state']}")


@question_app.command("approve")
def question_approve(identifier: str = typer.Argument(..., help="Question id or prefix.")) -> None:
    """Answer a peer's question (cells below k withheld); the peer collects it by asking again.

    Example: openjip federation question approve 3f2a9c1d
    """
    _decide(identifier, approve=True)


@question_app.command("reject")
def question_reject(identifier: str = typer.Argument(..., help="Question id or prefix.")) -> None:
    """Refuse a peer's question for good.

    Example: openjip federation question reject 3f2a9c1d
    """
    _decide(identifier, approve=False)
