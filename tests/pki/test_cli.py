"""`appliance hsm ...` and `appliance pki ...` against the real SoftHSM2 token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from appliance.cli import main
from appliance.models import AuditEvent
from tests.fixtures.hsm import PkiEnv, SoftHsm, hsm_section, write_pki_config, write_softhsm_conf

pytestmark = pytest.mark.hsm


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    "args",
    [
        ["hsm", "--help"],
        ["hsm", "init-token", "--help"],
        ["hsm", "status", "--help"],
        ["hsm", "list-keys", "--help"],
        ["pki", "--help"],
        ["pki", "init", "--help"],
        ["pki", "revoke", "--help"],
        ["pki", "crl", "--help"],
        ["pki", "trust-root", "add", "--help"],
        ["pki", "trust-root", "retire", "--help"],
        ["pki", "import-crl", "--help"],
    ],
)
def test_help(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 0 and "Usage:" in result.output


def test_status_list_keys_and_pki_init(pki_env: PkiEnv, tmp_path: Path) -> None:
    config = str(pki_env.config_path)
    status = run("--config", config, "hsm", "status")
    assert status.exit_code == 0 and "state:    ok" in status.output
    keys = run("--config", config, "hsm", "list-keys")
    assert keys.exit_code == 0 and pki_env.person.key.label in keys.output and "pkcs11:token=" in keys.output
    init = run("--config", config, "pki", "init", "--export-dir", str(tmp_path / "pem"))
    assert init.exit_code == 0, init.output
    assert init.output.count("exists") == 4
    assert {p.name for p in (tmp_path / "pem").iterdir()} == {
        "root.pem",
        "issuing.pem",
        "tsa.pem",
        "chain.pem",
    }
    crl = run("--config", config, "pki", "crl")
    assert crl.exit_code == 0 and "CRL number" in crl.output


def test_issue_and_revoke_by_serial(pki_env: PkiEnv) -> None:
    config = str(pki_env.config_path)
    issued = run(
        "--config", config, "pki", "issue", "--kind", "person", "--cn", "Sun Qi", "--email", "sun@example.com"
    )
    assert issued.exit_code == 0, issued.output
    serial = issued.output.split("serial ", 1)[1].split()[0]
    revoked = run("--config", config, "pki", "revoke", "--serial", serial, "--reason", "affiliation_changed")
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    again = run("--config", config, "pki", "revoke", "--serial", serial, "--reason", "affiliation_changed")
    assert again.exit_code == 1 and "already revoked" in again.output
    unknown = run("--config", config, "pki", "revoke", "--serial", "abc123", "--reason", "unspecified")
    assert unknown.exit_code == 1 and "error:" in unknown.output
    with pki_env.services.sessions() as session:
        logged = session.scalars(
            select(AuditEvent).where(AuditEvent.details.contains(serial)).order_by(AuditEvent.seq)
        ).all()
    assert [e.action for e in logged] == ["pki.certificate_issued", "pki.certificate_revoked"]
    assert '"reason":"affiliation_changed"' in logged[1].details and logged[1].actor_name.startswith("cli")


def test_init_token_refuses_other_modules(softhsm: SoftHsm, tmp_path: Path) -> None:
    config = write_pki_config(
        tmp_path, softhsm, hsm=hsm_section(softhsm, module="/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")
    )
    result = run("--config", str(config), "hsm", "init-token")
    assert result.exit_code == 1 and "only initialises SoftHSM2 tokens" in result.output


def test_pki_init_without_hsm_is_a_config_error(softhsm: SoftHsm, tmp_path: Path) -> None:
    config = write_pki_config(tmp_path, softhsm, with_hsm=False)
    result = run("--config", str(config), "pki", "init")
    assert result.exit_code == 2 and "hsm:" in result.output


@pytest.mark.slow
def test_init_token_then_pki_init_in_a_fresh_process(softhsm: SoftHsm, tmp_path: Path) -> None:
    """A new SoftHSM2 token directory needs a new process (SoftHSM2 reads it once per process)."""
    conf = write_softhsm_conf(tmp_path / "softhsm")
    config = write_pki_config(tmp_path / "app", softhsm, hsm=hsm_section(softhsm, token_label="fresh"))
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), "APPLIANCE_CONFIG": str(config)}
    cli = [sys.executable, "-m", "appliance"]

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=120)

    so_pin_file = tmp_path / "so-pin"
    first = call("hsm", "init-token", "--so-pin-file", str(so_pin_file))
    assert first.returncode == 0 and "initialised SoftHSM2 token 'fresh'" in first.stdout, first.stderr
    assert so_pin_file.stat().st_mode & 0o077 == 0 and len(so_pin_file.read_text().strip()) == 16
    second = call("hsm", "init-token")
    assert second.returncode == 0 and "already exists" in second.stdout
    assert call("migrate").returncode == 0
    init = call("pki", "init")
    assert init.returncode == 0 and init.stdout.count("created") == 4, init.stdout + init.stderr
    again = call("pki", "init")
    assert again.returncode == 0 and again.stdout.count("exists") == 4
    assert softhsm.pin not in first.stdout + first.stderr + init.stdout + init.stderr
