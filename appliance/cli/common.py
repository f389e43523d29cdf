"""What every command shares: the config path, loading it, and turning errors into exit codes."""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from appliance.audit import AuditRecord, append_event
from appliance.clock import SystemClock
from appliance.config import AppConfig, config_path_from_env, load_config
from appliance.db import create_db_engine, create_session_factory, ensure_migrated, transaction
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


def operator_name() -> str:
    """Who runs the command, for the operation log: `cli:<login name>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (e.g. a container user without a passwd entry)
        return "cli"


def log_command(cfg: AppConfig, action: str, details: Mapping[str, Any]) -> None:
    """Record an operator command that changed the installation in the operation log."""
    engine = create_db_engine(cfg.database, cfg.secrets)
    try:
        with transaction(create_session_factory(engine)) as session:
            append_event(
                session,
                AuditRecord(
                    action=action,
                    occurred_at=SystemClock().now(),
                    actor_name=operator_name(),
                    details=details,
                ),
            )
    finally:
        engine.dispose()


def raise_if_problems(problems: list[str]) -> None:
    if problems:
        raise ConfigError(problems)
