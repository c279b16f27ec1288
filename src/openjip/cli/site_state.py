"""``openjip site backup|restore|check``: the commands of :mod:`openjip.state`."""

from __future__ import annotations

from typing import Annotated

import typer

from openjip.access.at_rest import protect_data_at_rest
from openjip.cli.environment import console, load_settings

app = typer.Typer()


@app.command()
def backup(
    dest: Annotated[str, typer.Argument(help="Folder of the backup, or s3://BUCKET/PREFIX.")],
) -> None:
    """Back up the site (index, queues, objects, keys, users, secrets) to a folder, with checksums.

    Runs while the site runs. A second backup into the same place copies only changed objects.
    DEST s3://BUCKET/PREFIX writes to the S3 server of OPENJIP_BACKUP__S3_* (default: the
    object store's).

    Example: openjip site backup /mnt/backups/site-a
    """
    from openjip.state.backup import BackupError
    from openjip.state.backup import backup as write_backup

    settings = load_settings()
    protect_data_at_rest(settings)  # what the backup writes is the owner's only
    try:
        result = write_backup(settings, dest)
    except (BackupError, OSError) as error:
        console.print(f"backup failed: {error}", markup=False)
        raise typer.Exit(1) from error
    console.print(
        f"backup {result.manifest}: {result.files} files "
        f"({result.copied} copied, {result.reused} unchanged objects kept)",
        markup=False,
        soft_wrap=True,
    )


@app.command()
def restore(
    source: Annotated[str, typer.Argument(help="Folder of a backup, or s3://BUCKET/PREFIX.")],
) -> None:
    """Rebuild a site from a backup into an empty OPENJIP_HOME, verifying every checksum first.

    Example: OPENJIP_HOME=/srv/openjip openjip site restore /mnt/backups/site-a
    """
    from openjip.state.backup import BackupError
    from openjip.state.backup import restore as restore_backup

    settings = load_settings()
    protect_data_at_rest(settings)
    try:
        manifest = restore_backup(settings, source)
    except (BackupError, OSError) as error:
        console.print(f"restore failed: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from error
    console.print(
        f"restored {len(manifest['files'])} files of site {manifest['site_id']} "
        f"(backup by openjip {manifest['openjip']}) into {settings.home_dir}",
        markup=False,
        soft_wrap=True,
    )
    if manifest.get("index", "sqlite") != "sqlite":
        console.print(
            f"the {manifest['index']} index is not in a backup: run `openjip index rebuild`",
            markup=False,
            soft_wrap=True,
        )


@app.command()
def check(
    min_free_mib: Annotated[
        int, typer.Option(help="Free disk the site needs besides its migrations, MiB.")
    ] = 512,
    max_backup_age_hours: Annotated[
        float | None, typer.Option(help="Fail unless a backup at most this old exists.")
    ] = None,
) -> None:
    """Say whether this openjip can open the site's state; exit 1 when an upgrade would fail.

    Prints the code's version, each store's schema version and pending migrations, free disk
    and the newest backup. Changes nothing.

    Example: openjip site check --max-backup-age-hours 24
    """
    from openjip.state.check import check_site

    findings = check_site(
        load_settings(),
        min_free_bytes=min_free_mib * 2**20,
        max_backup_age_hours=max_backup_age_hours,
    )
    for finding in findings:
        console.print(
            f"{'ok  ' if finding.ok else 'FAIL'} {finding.text}", markup=False, soft_wrap=True
        )
    if not all(finding.ok for finding in findings):
        raise typer.Exit(1)
