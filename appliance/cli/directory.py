"""`appliance directory ...`: check the LDAP/AD connection, look people up, sync everyone."""

from __future__ import annotations

import click

from appliance.cli.common import load_cli_config
from appliance.db import ensure_migrated
from appliance.errors import InvalidInput
from appliance.services import Services, build_services


def _services(ctx: click.Context) -> Services:
    services = build_services(load_cli_config(ctx))
    if services.directory is None:
        raise InvalidInput("no directory is configured (add the `directory` section to the config)")
    return services


@click.group()
def directory() -> None:
    """The corporate directory (LDAP / Active Directory)."""


@directory.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Connect to every configured server with the service account and report."""
    services = _services(ctx)
    assert services.directory is not None
    health = services.directory.health()
    for server in health.servers:
        click.echo(f"{server.url}: {'ok' if server.reachable else 'FAILED'} ({server.detail})")
    if not health.ok:
        raise click.exceptions.Exit(1)


@directory.command()
@click.argument("username")
@click.pass_context
def lookup(ctx: click.Context, username: str) -> None:
    """Show what the directory says about USERNAME (groups and the roles they grant)."""
    services = _services(ctx)
    assert services.directory is not None
    person = services.directory.lookup(username)
    if person is None:
        click.echo(f"{username}: not found (or not unique)")
        raise click.exceptions.Exit(1)
    click.echo(f"dn: {person.dn}")
    click.echo(f"name: {person.display_name}")
    click.echo(f"status: {person.status.value}")
    click.echo(f"department: {person.department or '-'}")
    click.echo(f"roles: {', '.join(sorted(r.value for r in person.roles)) or '-'}")
    for group in sorted(person.groups):
        click.echo(f"group: {group}")


@directory.command()
@click.option("--force", is_flag=True, help="Apply even when more than half would be marked as gone.")
@click.pass_context
def sync(ctx: click.Context, force: bool) -> None:
    """Refresh every known person from the directory; mark people who left as inactive."""
    services = _services(ctx)
    ensure_migrated(services.engine)  # lookup and check need no database; sync does
    report = services.auth.sync_directory(force=force)
    click.echo(f"refreshed {report.refreshed}, deactivated {report.deactivated}, left {report.left}")
