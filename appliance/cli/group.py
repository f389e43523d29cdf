"""The command group: loads each subcommand's module only when that command runs, and
prints our errors as plain lines (never a traceback) with a meaningful exit code. The
operator at the console sees an error's detail, which a web client never does.

Importing every command up front costs pyHanko, SQLAlchemy, ldap3 and the web stack (over
a second) before `appliance --help` can answer, so the group lists its commands from a
table and imports a module on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import click

from appliance.errors import ApplianceError, ConfigError

EXIT_CONFIG = 2
EXIT_FAILURE = 1


@dataclass(frozen=True)
class LazyCommand:
    target: str  # "module:attribute"
    short_help: str  # shown by --help without importing; a test keeps it equal to the command's


class ApplianceGroup(click.Group):
    def __init__(
        self, *args: Any, lazy_commands: dict[str, LazyCommand] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_commands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = self.lazy_commands.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = lazy.target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{lazy.target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, lazy.short_help) for name, lazy in self.lazy_commands.items()]
        for name in super().list_commands(ctx):
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            ctx.exit(EXIT_CONFIG)
        except ApplianceError as exc:
            click.echo(f"error: {exc.detail}", err=True)
            ctx.exit(EXIT_FAILURE)
