"""Core operator commands: init, check-config, migrate, serve, version."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import click

from appliance.cli.common import config_path, load_cli_config, log_command
from appliance.config import load_config
from appliance.db import create_db_engine, current_revision, ensure_migrated, migrate_database
from appliance.errors import InvalidInput

STARTER_CONFIG = """\
# Written by `appliance init`. Every key is documented in config.example.yaml.
private_cloud_address: "http://{bind}:{port}"
server:
  bind: "{bind}"
  port: {port}
  workers: 2
  tls: false
network:
  allowed_networks: ["127.0.0.0/8", "::1/128"]
  trusted_proxies: []
database:
  url: "{database_url}"
storage:
  path: "{root}/blobs"
hsm:
  module: "/usr/lib/softhsm/libsofthsm2.so"
  token_label: "appliance"
  pin_file: "{root}/secrets/hsm-pin"
auth:
  session_secret_file: "{root}/secrets/session-secret"
"""


@click.command()
@click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the config, secrets and data (created if missing).",
)
@click.option("--database-url", help="Database URL (default: SQLite in DIR/data).")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
def init(root: Path, database_url: str | None, bind: str, port: int) -> None:
    """Write a starter config, secrets and data folders. Leaves an existing config untouched."""
    root = root.resolve()
    config_file = root / "config.yaml"
    for folder, mode in (
        (root, 0o750),
        (root / "data", 0o700),
        (root / "blobs", 0o700),
        (root / "secrets", 0o700),
    ):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(mode)
    _write_secret(root / "secrets" / "session-secret", secrets.token_urlsafe(48))
    _write_secret(root / "secrets" / "hsm-pin", secrets.token_hex(8))
    if config_file.exists():
        click.echo(f"{config_file} already exists; left unchanged")
        return
    url = database_url or f"sqlite:///{root}/data/appliance.db"
    config_file.write_text(STARTER_CONFIG.format(bind=bind, port=port, database_url=url, root=root))
    config_file.chmod(0o640)
    click.echo(f"wrote {config_file}")


def _write_secret(path: Path, value: str) -> None:
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")


@click.command("check-config")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def check_config(ctx: click.Context, path: Path | None) -> None:
    """Validate a config file (default: --config / APPLIANCE_CONFIG); exit 2 when invalid."""
    target = path or config_path(ctx)
    load_config(target)
    click.echo(f"{target}: OK")


@click.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply pending database migrations."""
    cfg = load_cli_config(ctx)
    engine = create_db_engine(cfg.database, cfg.secrets)
    before = current_revision(engine)
    revision = migrate_database(engine)
    engine.dispose()
    if revision != before:
        log_command(cfg, "ops.migrated", {"from": before, "to": revision})
    click.echo(f"database schema at revision {revision}")


@click.command()
@click.option("--dev", is_flag=True, help="Run Flask's development server instead of gunicorn.")
@click.pass_context
def serve(ctx: click.Context, dev: bool) -> None:
    """Serve the web app and API (gunicorn in production)."""
    path = config_path(ctx)
    cfg = load_cli_config(ctx)
    ensure_migrated(create_db_engine(cfg.database, cfg.secrets))
    if dev:
        from appliance.web import create_app

        create_app(cfg).run(host=cfg.server.bind, port=cfg.server.port, debug=False)
        return
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or shutil.which("gunicorn")
    if gunicorn is None:
        raise InvalidInput("gunicorn is not installed next to this Python; reinstall the appliance")
    env = dict(os.environ, APPLIANCE_CONFIG=str(path.resolve()))
    metrics_dir = Path(env.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="appliance-metrics-"))
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, mode=0o700)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    bind = f"[{cfg.server.bind}]" if ":" in cfg.server.bind else cfg.server.bind
    args = [
        gunicorn,
        "--config",
        "python:appliance.web.gunicorn_conf",
        "--bind",
        f"{bind}:{cfg.server.port}",
        "--workers",
        str(cfg.server.workers),
        "--timeout",
        str(cfg.server.timeout_seconds),
        "appliance.web.wsgi:app",
    ]
    os.execve(gunicorn, args, env)
