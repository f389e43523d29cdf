"""What every command shares: the config path, loading it, and turning errors into exit codes."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.config import AppConfig, config_path_from_env, load_config
from appliance.db import ensure_migrated
from appliance.errors import ConfigError
from appliance.services import Services, build_services


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
