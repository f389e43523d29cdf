"""Config errors: one line per problem naming the key, exit code 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from appliance.config import load_config
from appliance.errors import ConfigError
from tests.conftest import ConfigFactory, ConfigFileFactory


def _problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ or {})
    return caught.value.problems


def _rewrite(path: Path, mutate) -> None:  # type: ignore[no-untyped-def]
    raw = yaml.safe_load(path.read_text())
    mutate(raw)
    path.write_text(yaml.safe_dump(raw))


def test_valid_config_loads_with_secrets(write_config: ConfigFactory) -> None:
    _, cfg = write_config()
    assert cfg.secrets.session_secret is not None
    assert cfg.network.allowed_networks == ["127.0.0.0/8", "10.0.0.0/8"]


def test_missing_key_is_named(config_file: ConfigFileFactory) -> None:
    path = config_file()
    _rewrite(path, lambda raw: raw["database"].pop("url"))
    assert _problems(path) == ["database.url: required key is missing"]


def test_bad_type_is_named(config_file: ConfigFileFactory) -> None:
    path = config_file(server={"port": "eighty"})
    problems = _problems(path)
    assert len(problems) == 1 and problems[0].startswith("server.port: ")


def test_the_digest_in_use_cannot_be_declared_weak(config_file: ConfigFileFactory) -> None:
    problems = _problems(config_file(retention={"weak_digests": ["sha1", "SHA256"]}))
    assert len(problems) == 1 and problems[0].startswith("retention.weak_digests: ")
    assert "sha256 is what the appliance signs and timestamps with" in problems[0]


def test_webhook_hosts_and_the_app_version_must_be_well_formed(config_file: ConfigFileFactory) -> None:
    path = config_file(
        webhooks={"allowed_hosts": ["erp.corp.example", "10.20.0.0/16", "https://oa.corp.example/"]},
        mobile={"minimum_client_version": "2.x"},
    )
    problems = _problems(path)
    assert any(p.startswith("webhooks.allowed_hosts:") and "https://oa.corp.example/" in p for p in problems)
    assert any(p.startswith("mobile.minimum_client_version:") for p in problems)


def test_several_problems_are_all_reported(config_file: ConfigFileFactory) -> None:
    path = config_file(server={"port": 0}, network={"allowed_networks": ["10.0.0.0/33"]})
    problems = _problems(path)
    assert any(p.startswith("server.port: ") for p in problems)
    assert any(p.startswith("network.allowed_networks.0: not an IP network") for p in problems)


def test_unknown_key_is_an_error(config_file: ConfigFileFactory) -> None:
    path = config_file(server={"prot": 8080})
    assert _problems(path) == ["server.prot: unknown key (check the spelling against config.example.yaml)"]


def test_unreadable_secret_file(config_file: ConfigFileFactory, tmp_path: Path) -> None:
    secret = tmp_path / "secrets" / "session-secret"
    path = config_file()
    secret.unlink()
    secret.mkdir()  # a folder cannot be read as a file, even by root
    problems = _problems(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"auth.session_secret_file: file {secret} is not readable")


def test_missing_secret_file(config_file: ConfigFileFactory, tmp_path: Path) -> None:
    path = config_file(auth={"session_secret_file": str(tmp_path / "nope")})
    assert _problems(path) == [f"auth.session_secret_file: file {tmp_path / 'nope'} does not exist"]


def test_secret_from_environment_wins(config_file: ConfigFileFactory, tmp_path: Path) -> None:
    path = config_file(auth={"session_secret_file": str(tmp_path / "nope")})
    cfg = load_config(path, environ={"APPLIANCE_SESSION_SECRET": "s" * 40})
    assert cfg.secrets.session_secret is not None
    assert cfg.secrets.session_secret.get_secret_value() == "s" * 40


def test_secrets_are_refused_in_yaml(config_file: ConfigFileFactory) -> None:
    path = config_file()
    _rewrite(path, lambda raw: raw.update(secrets={"session_secret": "x" * 40}))
    assert _problems(path)[0].startswith("secrets: not allowed in the YAML")


def test_hsm_section_needs_a_pin(config_file: ConfigFileFactory) -> None:
    path = config_file(hsm={"token_label": "appliance"})
    assert _problems(path) == ["hsm.pin_file: required (or set APPLIANCE_HSM_PIN)"]


def test_hsm_timeout_must_fit_in_the_worker_timeout(config_file: ConfigFileFactory, tmp_path: Path) -> None:
    pin = tmp_path / "pin"
    pin.write_text("1234")
    hsm = {"token_label": "appliance", "pin_file": str(pin), "timeout_seconds": 25}
    path = config_file(hsm=hsm, server={"timeout_seconds": 60})
    problems = _problems(path)
    assert len(problems) == 1
    assert problems[0].startswith("hsm.timeout_seconds: 25 s allows an HSM call to take up to 75 s")
    path = config_file(hsm={**hsm, "timeout_seconds": 10}, server={"timeout_seconds": 60})
    assert load_config(path, environ={}).hsm is not None


def test_plain_ldap_needs_explicit_consent(config_file: ConfigFileFactory, tmp_path: Path) -> None:
    pw = tmp_path / "ldap-pw"
    pw.write_text("pw")
    directory = {
        "servers": [{"url": "ldap://127.0.0.1:389"}],
        "start_tls": False,
        "bind_dn": "cn=svc",
        "bind_password_file": str(pw),
        "user_base_dn": "dc=example",
    }
    path = config_file(directory=directory)
    assert _problems(path) == [
        "directory: ldap:// servers need start_tls: true (or allow_plain: true for a lab)"
    ]


@pytest.mark.parametrize(
    ("servers", "start_tls"), [(["ldap://127.0.0.1:389"], True), (["ldaps://127.0.0.1:636"], False)]
)
def test_directory_tls_needs_a_ca_file(
    config_file: ConfigFileFactory, tmp_path: Path, servers: list[str], start_tls: bool
) -> None:
    # without ca_file the operating system's trust store would vouch for the directory
    pw = tmp_path / "ldap-pw"
    pw.write_text("pw")
    directory = {
        "servers": [{"url": url} for url in servers],
        "start_tls": start_tls,
        "allow_plain": not start_tls,
        "bind_dn": "cn=svc",
        "bind_password_file": str(pw),
        "user_base_dn": "dc=example",
    }
    [problem] = _problems(config_file(directory=directory))
    assert problem.startswith("directory.ca_file: required when TLS is used")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = load_config(config_file(directory={**directory, "ca_file": str(ca)}), environ={})
    assert cfg.directory is not None and cfg.directory.ca_file == ca


def test_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("server: [unclosed\n")
    assert _problems(path)[0].startswith(f"{path}: not valid YAML at line")


def test_example_config_is_valid_apart_from_secrets() -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.yaml"
    problems = _problems(example)
    # Only the secret files of a production host are missing here.
    assert problems and all("_file: file /etc/appliance/secrets/" in p for p in problems)


def test_cli_reports_problems_with_exit_code_2(config_file: ConfigFileFactory) -> None:
    path = config_file(server={"port": "eighty"}, database={"url": "mysql://x"})
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(path), "check-config"],
        capture_output=True,
        text=True,
        env={**os.environ, "APPLIANCE_SESSION_SECRET": ""},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert sorted(line.split(":")[0] for line in lines) == ["database.url", "server.port"]
    assert "Traceback" not in result.stderr


def test_cli_accepts_a_good_config(write_config: ConfigFactory) -> None:
    path, _ = write_config()
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "check-config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path}: OK"
