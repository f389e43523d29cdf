"""`appliance hsm ...`: the HSM token (status, keys) and a dev/test token initialiser."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

import click

from appliance.cli.common import load_cli_config
from appliance.config import AppConfig
from appliance.errors import ConfigError, InvalidInput
from appliance.hsm import HsmUnavailable, KeyCustody, create_custody


def _custody(cfg: AppConfig) -> KeyCustody:
    if cfg.hsm is None:
        raise ConfigError(["hsm: the section is missing; the appliance needs an HSM"])
    return create_custody(cfg.hsm, cfg.secrets.hsm_pin)


@click.group()
def hsm() -> None:
    """The HSM holding every private key (PKCS#11)."""


@hsm.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Probe the token; exit 1 when it does not answer."""
    cfg = load_cli_config(ctx)
    health = _custody(cfg).health()
    assert cfg.hsm is not None
    click.echo(f"module:   {cfg.hsm.module}")
    click.echo(f"token:    {health.token_label or '-'}")
    click.echo(f"state:    {'ok' if health.ok else 'unavailable'} ({health.detail})")
    if health.ok:
        click.echo(f"device:   {health.manufacturer} {health.model} serial {health.serial}")
        click.echo(f"library:  {health.library}")
        click.echo(f"latency:  {health.latency_ms} ms")
    else:
        raise HsmUnavailable(health.detail)


@hsm.command("list-keys")
@click.pass_context
def list_keys(ctx: click.Context) -> None:
    """List the private keys in the token (label, algorithm, CKA_ID, PKCS#11 URI)."""
    cfg = load_cli_config(ctx)
    custody = _custody(cfg)
    keys = custody.list_keys()
    if not keys:
        click.echo("no keys in the token")
    for key in keys:
        click.echo(f"{key.label}\t{key.algorithm.value}\t{key.key_id_hex}\t{key.to_uri(custody.token_label)}")


@hsm.command("init-token")
@click.option(
    "--so-pin-file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Where to keep the new token's SO PIN (default: next to hsm.pin_file, as hsm-so-pin).",
)
@click.pass_context
def init_token(ctx: click.Context, so_pin_file: str | None) -> None:
    """Development and tests only: initialise a SoftHSM2 token with the configured label and PIN.

    Does nothing when the token exists. Refused for any module other than SoftHSM2: a
    real HSM is initialised with its vendor's tools.
    """
    cfg = load_cli_config(ctx)
    if cfg.hsm is None:
        raise ConfigError(["hsm: the section is missing"])
    if "softhsm" not in cfg.hsm.module.name.lower():
        raise InvalidInput(
            f"init-token only initialises SoftHSM2 tokens; {cfg.hsm.module} is another HSM "
            "(initialise it with the vendor's tools)"
        )
    tool = shutil.which("softhsm2-util")
    if tool is None:
        raise InvalidInput("softhsm2-util is not installed (apt-get install softhsm2)")
    label = cfg.hsm.token_label
    if label is None:
        raise InvalidInput("init-token needs hsm.token_label (not only hsm.uri)")
    assert cfg.secrets.hsm_pin is not None
    shown = subprocess.run([tool, "--show-slots"], capture_output=True, text=True, timeout=60, check=False)
    labels = {
        line.split(":", 1)[1].strip()
        for line in shown.stdout.splitlines()
        if line.strip().startswith("Label:")
    }
    if label in labels:
        click.echo(f"token {label!r} already exists; nothing to do")
        return
    so_pin_path = so_pin_file or str(
        (cfg.hsm.pin_file.parent if cfg.hsm.pin_file else cfg.storage.path.parent) / "hsm-so-pin"
    )
    so_pin = secrets.token_hex(8)
    fd = os.open(so_pin_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(so_pin + "\n")
    # softhsm2-util takes PINs only as arguments; this command is for dev machines and CI
    result = subprocess.run(
        [
            tool,
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            so_pin,
            "--pin",
            cfg.secrets.hsm_pin.get_secret_value(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        # softhsm2-util's message names no PIN; pass its last line on
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise HsmUnavailable(f"softhsm2-util could not initialise the token: {last[0]}")
    click.echo(f"initialised SoftHSM2 token {label!r} (SO PIN in {so_pin_path})")
