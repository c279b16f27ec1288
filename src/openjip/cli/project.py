"""``openjip project add-study|move-study``: put studies of the local index into projects."""

from __future__ import annotations

from typing import Annotated

import typer

from openjip.cli.environment import console, fail, load_settings

app = typer.Typer(
    name="project",
    help="Assign studies to projects (who may see them follows from the projects).",
    no_args_is_help=True,
)

Project = Annotated[str, typer.Argument(help="Project name, e.g. lung-study.")]
Studies = Annotated[list[str], typer.Argument(help="StudyInstanceUID(s).")]


def _assign(project: str, studies: list[str], *, replace: bool) -> None:
    from openjip.access import AccessAudit, principal
    from openjip.access.projects import ProjectMarkers, check_project_names
    from openjip.dicom import InvalidUID, check_uid
    from openjip.index import IndexError_, Query, open_index
    from openjip.storage import StorageError, open_store

    try:
        (name,) = check_project_names([project])
        uids = [check_uid(uid, "StudyInstanceUID") for uid in studies]
    except (ValueError, InvalidUID) as error:
        fail(str(error), code=2)
    settings = load_settings()
    audit = AccessAudit(settings.access_audit_path, max_bytes=settings.access.audit_max_bytes)
    operator = principal("cli", "user", ["admin"])
    missing: list[str] = []
    try:
        index = open_index(settings)
        markers = ProjectMarkers(open_store(settings))
        try:
            for uid in uids:
                if index.set_study_projects(uid, [name], replace=replace):
                    (study,) = index.find_studies(Query(StudyInstanceUID=[uid], limit=1))
                    markers.replace(uid, study.projects)  # kept for index rebuild
                    action = "move_study" if replace else "add_study"
                    audit.record(
                        operator,
                        action,
                        "allowed",
                        study=uid,
                        surface="cli",
                        detail=f"projects {name}",
                    )
                else:
                    missing.append(uid)
        finally:
            index.close()
    except (IndexError_, StorageError, OSError) as error:
        fail(f"cannot change the index: {error}")
    done = len(uids) - len(missing)
    console.print(f"{'moved' if replace else 'added'} {done} studies to project {name}")
    if missing:
        fail(f"no such study: {', '.join(missing)}")


@app.command("add-study")
def add_study(project: Project, studies: Studies) -> None:
    """Add studies to a project (they stay in the projects they have).

    Example: openjip project add-study lung-study 1.2.840.113619.2.1
    """
    _assign(project, studies, replace=False)


@app.command("move-study")
def move_study(project: Project, studies: Studies) -> None:
    """Move studies to a project (they leave every other project).

    Example: openjip project move-study lung-study 1.2.840.113619.2.1
    """
    _assign(project, studies, replace=True)
