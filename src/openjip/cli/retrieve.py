"""``openjip retrieve``: copy a study or series out of the site's store into a folder, as stored,
or de-identified when a project of the instance de-identifies on export (:mod:`openjip.deid`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from openjip.cli.environment import console, fail, load_settings
from openjip.deid.instance import Refused
from openjip.deid.policy import ProjectPolicies, write_exported
from openjip.deid.profile import ProfileError
from openjip.dicom import InvalidUID, check_uid
from openjip.index import IndexError_, Query, open_index
from openjip.state import StateTooNew
from openjip.storage import StorageError, open_store

app = typer.Typer()


@app.command()
def retrieve(
    study: Annotated[str, typer.Option("--study", help="StudyInstanceUID to retrieve.")],
    to: Annotated[
        Path,
        typer.Option(
            "--to", file_okay=False, help="Folder to write <study>/<series>/<sop>.dcm into."
        ),
    ],
    series: Annotated[
        list[str] | None,
        typer.Option("--series", help="Only this SeriesInstanceUID of the study (repeatable)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary with every file written.")
    ] = False,
) -> None:
    """Write every instance of a study (or of some of its series) to a folder, byte for byte as
    the site stored it.

    An instance of a project that de-identifies on export is written de-identified instead,
    under its new UIDs; one that may not leave so is named and the exit code is 1.

    Example: openjip retrieve --study 1.2.840.113619.2.1 --to ./study
    """
    try:
        query = Query(
            StudyInstanceUID=[check_uid(study, "--study")],
            SeriesInstanceUID=[check_uid(uid, "--series") for uid in series or []],
        )
    except InvalidUID as error:
        fail(str(error), code=2)
    settings = load_settings()
    try:
        index = open_index(settings)
        try:
            records = index.find_instances(query)
        finally:
            index.close()
    except (IndexError_, OSError) as error:
        fail(f"cannot search the index: {error}")
    if not records:
        wanted = f"series {', '.join(series)} of study {study}" if series else f"study {study}"
        fail(f"nothing stored for {wanted}")
    store = open_store(settings)
    try:
        export = ProjectPolicies.for_site(settings)
    except ProfileError as error:
        fail(f"deid.projects: {error}", code=2)
    except StateTooNew as error:
        fail(str(error))
    written: list[str] = []
    refused: list[str] = []
    try:
        for record in records:
            rewrite = export.on_export(record.projects) if export else None
            if rewrite is None:
                target = to / record.StudyInstanceUID / record.SeriesInstanceUID
                path = target / f"{record.SOPInstanceUID}.dcm"
                store.download(record.object_key, path)
            else:
                try:
                    path = write_exported(rewrite(store.get(record.object_key)), to)
                except Refused as reason:
                    refused.append(f"{record.SOPInstanceUID}: {reason}")
                    continue
            written.append(str(path))
    except (StorageError, OSError) as error:
        fail(f"retrieve stopped after {len(written)} of {len(records)} instances: {error}")
    if refused:
        fail(
            f"{len(refused)} of {len(records)} instances not written (export policy): "
            + "; ".join(refused)
        )
    size = sum(record.size for record in records)
    if as_json:
        typer.echo(json.dumps({"instances": len(written), "bytes": size, "files": written}))
        return
    series_count = len({record.SeriesInstanceUID for record in records})
    console.print(
        f"retrieved {len(written)} instances of {series_count} series ({size / 1e6:.1f} MB) to {to}"
    )
