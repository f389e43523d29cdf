"""What every command shares: the config path, loading it, and turning errors into exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from appliance.config import AppConfig, config_path_from_env, load_config
from appliance.db import ensure_migrated
from appliance.errors import ApplianceError, ConfigError
from appliance.services import Services, build_services

EXIT_CONFIG = 2
EXIT_FAILURE = 1


class ApplianceGroup(click.Group):
    """Prints our errors as plain lines (never a traceback) with a meaningful exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            ctx.exit(EXIT_CONFIG)
        except ApplianceError as exc:
            click.echo(f"error: {exc.public}", err=True)
            ctx.exit(EXIT_FAILURE)


def config_path(ctx: click.Context) -> Path:
    root = ctx.find_root()
    chosen: Path | None = root.params.get("config_path")
    return chosen or config_path_from_env()


def load_cli_config(ctx: click.Context) -> AppConfig:
    return load_config(config_path(ctx))


def open_services(cfg: AppConfig) -> Services:
    """The integrations for `cfg`, refusing (NotMigrated) a database whose schema is not current."""
    services = build_services(cfg)
    ensure_migrated(services.engine)
    return services


def raise_if_problems(problems: list[str]) -> None:
    if problems:
        raise ConfigError(problems)
