"""The `appliance` command for operators."""

from pathlib import Path

import click

from appliance import __version__
from appliance.cli.group import ApplianceGroup, LazyCommand
from appliance.foreign_warnings import silence_foreign_deprecations

silence_foreign_deprecations()

COMMANDS = {
    "init": LazyCommand("appliance.cli.core:init", "Write a starter config, secrets and data folders."),
    "check-config": LazyCommand(
        "appliance.cli.core:check_config",
        "Validate a config file (default: --config / APPLIANCE_CONFIG); exit 2 when invalid.",
    ),
    "migrate": LazyCommand("appliance.cli.core:migrate", "Apply pending database migrations."),
    "serve": LazyCommand("appliance.cli.core:serve", "Serve the web app and API (gunicorn in production)."),
    "backup": LazyCommand(
        "appliance.cli.ops:backup",
        "Write one archive: consistent database dump, blob store, config, and a sha256 manifest.",
    ),
    "restore": LazyCommand(
        "appliance.cli.ops:restore",
        "Restore ARCHIVE into the empty database and blob store named by the config.",
    ),
    "hsm": LazyCommand("appliance.cli.hsm:hsm", "The HSM holding every private key (PKCS#11)."),
    "pki": LazyCommand(
        "appliance.cli.pki:pki", "The appliance's certificate authority and timestamp authority."
    ),
    "sign": LazyCommand(
        "appliance.cli.signing:sign",
        "Sign SOURCE into DESTINATION with an HSM key (incremental, PAdES B-LT).",
    ),
    "verify": LazyCommand(
        "appliance.cli.signing:verify",
        "Check every signature in PATH against the appliance's trust roots and CRLs.",
    ),
    "directory": LazyCommand(
        "appliance.cli.directory:directory", "The corporate directory (LDAP / Active Directory)."
    ),
    "admin": LazyCommand("appliance.cli.admin:admin", "The local (break-glass) system administrator."),
    "jobs": LazyCommand(
        "appliance.cli.jobs:jobs",
        "Scheduled work: CRL refresh, directory sync, mail, contract deadlines and reminders, purges.",
    ),
    "verify-log": LazyCommand(
        "appliance.cli.log:verify_log_command",
        "Check the operation log's hash chain and signed checkpoints; exit 1 naming the first bad record.",
    ),
    "log-checkpoint": LazyCommand(
        "appliance.cli.log:log_checkpoint_command",
        "Sign the operation log's current head with the appliance's HSM key.",
    ),
    "retention": LazyCommand(
        "appliance.cli.retention:retention",
        "Retention: delete expired drafts and closed contracts, archive completed ones.",
    ),
    "contracts": LazyCommand(
        "appliance.cli.contracts:contracts", "Contracts: list them, show one, verify its evidence."
    ),
}


@click.group(cls=ApplianceGroup, lazy_commands=COMMANDS)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (default: $APPLIANCE_CONFIG or /etc/appliance/config.yaml).",
)
def main(config_path: Path | None) -> None:
    """Operate the e-signature appliance."""


@main.command()
def version() -> None:
    """Print the appliance version."""
    click.echo(__version__)
