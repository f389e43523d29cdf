"""`appliance verify-log` and `appliance log-checkpoint`: the operation log's integrity."""

from __future__ import annotations

import sys

import click

from appliance.audit.checkpoints import verify_log, write_checkpoint
from appliance.cli.common import load_cli_config, open_services
from appliance.db import transaction
from appliance.errors import ConfigError
from appliance.hsm import KeyCustody
from appliance.services import Services


@click.command("verify-log")
@click.pass_context
def verify_log_command(ctx: click.Context) -> None:
    """Check the operation log's hash chain and signed checkpoints; exit 1 naming the first bad record."""
    services, custody = _services_with_hsm(ctx)
    with services.sessions() as session:
        report = verify_log(session, custody)
    for problem in report.problems:
        click.echo(f"record {problem.seq}: {problem.problem}")
    if not report.intact:
        click.echo(
            f"operation log BROKEN: first bad record {report.first_bad_record} "
            f"({len(report.problems)} problems, {report.records} records, {report.checkpoints} checkpoints)",
            err=True,
        )
        sys.exit(1)
    click.echo(f"operation log intact: {report.records} records, {report.checkpoints} signed checkpoints")


@click.command("log-checkpoint")
@click.pass_context
def log_checkpoint_command(ctx: click.Context) -> None:
    """Sign the operation log's current head with the appliance's HSM key."""
    services, custody = _services_with_hsm(ctx)
    with transaction(services.sessions) as session:
        checkpoint = write_checkpoint(session, custody, services.clock.now())
        seq, head = checkpoint.seq, checkpoint.head_hash
    click.echo(f"checkpoint of record {seq} signed (head {head})")


def _services_with_hsm(ctx: click.Context) -> tuple[Services, KeyCustody]:
    services = open_services(load_cli_config(ctx))
    if services.custody is None:
        raise ConfigError(
            ["hsm: required; the operation log's checkpoints are signed with the appliance's HSM key"]
        )
    return services, services.custody
