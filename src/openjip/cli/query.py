"""``openjip query studies|series|instances``: search the metadata index from the terminal."""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from openjip.cli.environment import console, fail, load_settings
from openjip.config.light import sqlite_index_path
from openjip.index import IndexError_, MetadataIndex, Query, open_index

app = typer.Typer(
    name="query",
    help="Search the index for studies, series or instances.",
    no_args_is_help=True,
)

_DATE_RANGE = re.compile(r"^(\d{8})?(-)?(\d{8})?$")


def study_date_range(value: str | None) -> str | None:
    """Check a DICOM date range (``YYYYMMDD``, ``A-B``, ``A-``, ``-B``) and return it."""
    if not value:
        return value
    match = _DATE_RANGE.match(value)
    if not match or not (match[1] or match[3]) or (match[1] and match[3] and not match[2]):
        raise typer.BadParameter(
            f"{value!r} is not a date range: "
            "use YYYYMMDD, YYYYMMDD-YYYYMMDD, YYYYMMDD- or -YYYYMMDD"
        )
    for date in (match[1], match[3]):
        if date:
            try:
                datetime.strptime(date, "%Y%m%d")
            except ValueError:
                raise typer.BadParameter(f"{date} is not a calendar date") from None
    if match[1] and match[3] and match[1] > match[3]:
        raise typer.BadParameter(f"{value!r}: the range ends before it starts")
    return value


PatientID = Annotated[
    str, typer.Option("--patient-id", help="PatientID; wildcards * and ? allowed.")
]
PatientName = Annotated[
    str,
    typer.Option(
        "--patient-name",
        help="PatientName, DICOM-style: DOE^J* (wildcards * and ?, ASCII case ignored).",
    ),
]
Modality = Annotated[str, typer.Option("--modality", help="Modality, e.g. CT.")]
StudyDate = Annotated[
    str | None,
    typer.Option(
        "--study-date",
        callback=study_date_range,
        help="StudyDate or range: 20200101-20201231, 20200101-, -20201231.",
    ),
]
Accession = Annotated[str, typer.Option("--accession-number", help="AccessionNumber.")]
StudyUID = Annotated[
    list[str] | None, typer.Option("--study-uid", help="StudyInstanceUID (repeatable).")
]
SeriesUID = Annotated[
    list[str] | None, typer.Option("--series-uid", help="SeriesInstanceUID (repeatable).")
]
Text = Annotated[str, typer.Option("--text", help="Words in study or series descriptions.")]
Limit = Annotated[
    int | None, typer.Option("--limit", min=1, help="At most this many results (default: all).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Same as --format json.")]


class OutputFormat(StrEnum):
    """How ``openjip query`` prints its results."""

    table = "table"
    json = "json"
    csv = "csv"


Format = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        help="table (for reading), json (records keyed by DICOM keywords, every field) or csv"
        " (the table's columns, one header row).",
    ),
]


def _run(
    level: str,
    query: Query,
    columns: Sequence[str],
    output: OutputFormat,
    search: Callable[[MetadataIndex, Query], Sequence[Any]],
) -> None:
    try:
        index = _open_index()
    except (IndexError_, OSError) as error:
        fail(f"cannot open the index: {error}")
    try:
        records = [record.to_dict() for record in search(index, query)]
    except IndexError_ as error:
        fail(f"query failed: {error}")
    finally:
        index.close()
    if output is OutputFormat.json:
        typer.echo(json.dumps(records, indent=2))
        return
    if output is OutputFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_cell(record.get(column)) for column in columns] for record in records)
        return
    table = Table(title=f"{len(records)} {level}", title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(*(escape(_cell(record.get(column))) for column in columns))
    console.print(table)


def _open_index() -> MetadataIndex:
    """The site's index; a SQLite file whose place the environment alone tells is opened
    without loading the settings model (the command answers sooner)."""
    path = sqlite_index_path()
    if path is None:
        return open_index(load_settings())
    from openjip.index.sqlite import SQLiteIndex

    return SQLiteIndex(path)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\\".join(str(v) for v in value)
    return str(value)


def _add_command(
    level: str,
    doc: str,
    columns: Sequence[str],
    search: Callable[[MetadataIndex, Query], Sequence[Any]],
) -> None:
    """Register ``openjip query LEVEL`` with the filters every level shares."""

    def command(
        patient_id: PatientID = "",
        patient_name: PatientName = "",
        modality: Modality = "",
        study_date: StudyDate = None,
        accession_number: Accession = "",
        study_uid: StudyUID = None,
        series_uid: SeriesUID = None,
        text: Text = "",
        limit: Limit = None,
        output: Format = OutputFormat.table,
        as_json: AsJson = False,
    ) -> None:
        query = Query(
            PatientID=patient_id,
            PatientName=patient_name,
            Modality=modality,
            StudyDate=study_date or "",
            AccessionNumber=accession_number,
            StudyInstanceUID=study_uid or [],
            SeriesInstanceUID=series_uid or [],
            text=text,
            limit=limit,
        )
        _run(level, query, columns, OutputFormat.json if as_json else output, search)

    command.__doc__ = doc
    app.command(name=level)(command)


_add_command(
    "studies",
    """List the studies that have a matching series or instance.

    Example: openjip query studies --patient-name 'DOE^*' --study-date 20200101-20201231
    """,
    [
        "PatientID",
        "PatientName",
        "StudyDate",
        "StudyDescription",
        "AccessionNumber",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
        "StudyInstanceUID",
    ],
    lambda index, query: index.find_studies(query),
)
_add_command(
    "series",
    """List the matching series with their instance counts and completion state.

    Example: openjip query series --modality CT --json
    """,
    [
        "PatientID",
        "StudyDate",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "NumberOfSeriesRelatedInstances",
        "complete",
        "SeriesInstanceUID",
    ],
    lambda index, query: index.find_series(query),
)
_add_command(
    "instances",
    """List the matching instances (``--json`` adds their object keys and receipt details).

    Example: openjip query instances --series-uid 1.2.840.113619.2.1.1 --limit 10
    """,
    ["PatientID", "Modality", "SeriesNumber", "InstanceNumber", "SOPInstanceUID", "size"],
    lambda index, query: index.find_instances(query),
)
