"""Operator commands for backup and restore (the logic lives in appliance.ops)."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli.common import config_path, load_cli_config, log_command
from appliance.clock import SystemClock
from appliance.db import create_db_engine, migrate_database
from appliance.ops import create_backup, restore_backup


@click.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="Archive file to write, or a folder for a dated appliance-backup-*.tar.gz.",
)
@click.pass_context
def backup(ctx: click.Context, output: Path) -> None:
    """Write one archive: consistent database dump, blob store, config, and a sha256 manifest.

    HSM keys are never in it; back them up with the HSM's own procedure.
    """
    cfg = load_cli_config(ctx)
    summary = create_backup(cfg, config_path(ctx), output, SystemClock())
    details = {
        "archive": summary.archive.name,
        "sha256": summary.archive_sha256,
        "schema": summary.schema_revision,
    }
    log_command(cfg, "ops.backup_written", details)
    click.echo(
        f"wrote {summary.archive} ({summary.database_backend}, schema {summary.schema_revision}, "
        f"{summary.blob_count} documents)"
    )
    click.echo(f"sha256 {summary.archive_sha256}")


@click.command()
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--config-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the archived config.yaml here (never over an existing file).",
)
@click.pass_context
def restore(ctx: click.Context, archive: Path, config_out: Path | None) -> None:
    """Restore ARCHIVE into the empty database and blob store named by the config.

    The whole archive is checked against its manifest first; a mismatch changes nothing.
    Stop the service before restoring. The restored database is then migrated to this
    version's schema, and the restore recorded in its operation log.
    """
    cfg = load_cli_config(ctx)
    summary = restore_backup(cfg, archive, config_out)
    click.echo(
        f"restored {summary.database_backend} database (schema {summary.schema_revision}) "
        f"and {summary.blob_count} documents"
    )
    if summary.config_written is not None:
        click.echo(f"archived config written to {summary.config_written}")
    # brought to this version's schema first, so that the restore can be written to its log
    engine = create_db_engine(cfg.database, cfg.secrets)
    try:
        revision = migrate_database(engine)
    finally:
        engine.dispose()
    details = {
        "archive": archive.name,
        "sha256": summary.archive_sha256,
        "schema_restored": summary.schema_revision or "",
        "schema": revision,
        "documents": summary.blob_count,
    }
    log_command(cfg, "ops.backup_restored", details)
    click.echo(f"database schema at revision {revision}; start the service")
