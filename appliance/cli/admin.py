"""`appliance admin create`: the break-glass local system administrator."""

from __future__ import annotations

import sys

import click

from appliance.cli.common import load_cli_config, open_services
from appliance.errors import InvalidInput


@click.group()
def admin() -> None:
    """The local (break-glass) system administrator."""


@admin.command()
@click.argument("username", default="admin")
@click.option("--display-name", help="Name shown in the UI (default: the user name).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")
@click.pass_context
def create(ctx: click.Context, username: str, display_name: str | None, password_stdin: bool) -> None:
    """Create the local administrator USERNAME, or set a new password for it.

    Works only while auth.local_admin_enabled is true; turn that off once directory
    sign-in works.
    """
    cfg = load_cli_config(ctx)
    if not cfg.auth.local_admin_enabled:
        raise InvalidInput("auth.local_admin_enabled is false: the local administrator is disabled")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    services = open_services(cfg)
    user_id = services.auth.create_local_admin(username, password, display_name)
    click.echo(f"local administrator {username!r} is ready (user id {user_id})")
