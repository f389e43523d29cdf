"""The `appliance` command for operators."""

from pathlib import Path

import click

from appliance.cli import admin, core, directory, hsm, jobs, ops, pki, signing
from appliance.cli.common import ApplianceGroup


@click.group(cls=ApplianceGroup)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (default: $APPLIANCE_CONFIG or /etc/appliance/config.yaml).",
)
def main(config_path: Path | None) -> None:
    """Operate the e-signature appliance."""


for command in (
    core.init,
    core.check_config,
    core.migrate,
    core.serve,
    core.version,
    ops.backup,
    ops.restore,
    hsm.hsm,
    pki.pki,
    signing.sign,
    signing.verify,
    directory.directory,
    admin.admin,
    jobs.jobs,
):
    main.add_command(command)
