"""The optional WireGuard role: check mode on a fresh host, then real key generation and
per-user client configs under a throwaway folder (the interface is not brought up)."""

from __future__ import annotations

import base64
import grp
import os
import subprocess
from pathlib import Path

import pytest

from tests.ansible.conftest import require_tools, role_run

pytestmark = pytest.mark.slow


def wg_vars(root: Path) -> dict[str, object]:
    return {
        "appliance_wireguard_manage_package": False,
        "appliance_wireguard_manage_interface": False,
        "appliance_wireguard_config_dir": str(root / "wireguard"),
        "appliance_wireguard_clients_dir": str(root / "wireguard/clients"),
        "appliance_wireguard_endpoint": "vpn.test.example",
        "appliance_wireguard_client_allowed_ips": ["10.99.0.1/32", "10.20.0.0/16"],
        "appliance_wireguard_clients": [
            {"name": "alice", "address": "10.99.0.10/32"},
            {"name": "bob", "address": "10.99.0.11/32"},
        ],
    }


def test_wireguard_generates_keys_and_client_configs_idempotently(tmp_path: Path) -> None:
    require_tools("wg")
    check = role_run("appliance_wireguard", wg_vars(tmp_path), tmp_path, "--check")
    assert check.returncode == 0, check.report()
    assert not (tmp_path / "wireguard").exists()

    first = role_run("appliance_wireguard", wg_vars(tmp_path), tmp_path)
    assert first.returncode == 0, first.report()
    second = role_run("appliance_wireguard", wg_vars(tmp_path), tmp_path)
    assert second.returncode == 0 and second.changed == 0, second.changed_tasks()

    server_key = (tmp_path / "wireguard/server.key").read_text().strip()
    assert len(base64.b64decode(server_key)) == 32
    assert (tmp_path / "wireguard/server.key").stat().st_mode & 0o777 == 0o600
    server_pub = subprocess.run(
        ["wg", "pubkey"], input=server_key, capture_output=True, text=True, check=True
    ).stdout.strip()
    server_conf = (tmp_path / "wireguard/wg0.conf").read_text()
    assert server_key not in server_conf  # loaded by PostUp from the key file
    for name, address in (("alice", "10.99.0.10/32"), ("bob", "10.99.0.11/32")):
        conf = tmp_path / f"wireguard/clients/{name}.conf"
        assert conf.stat().st_mode & 0o777 == 0o600
        text = conf.read_text()
        assert f"PublicKey = {server_pub}" in text
        assert "Endpoint = vpn.test.example:51820" in text
        assert f"Address = {address}" in text
        assert "AllowedIPs = 10.99.0.1/32, 10.20.0.0/16" in text
        private = text.split("PrivateKey = ", 1)[1].splitlines()[0]
        public = subprocess.run(
            ["wg", "pubkey"], input=private, capture_output=True, text=True, check=True
        ).stdout.strip()
        assert f"PublicKey = {public}\nAllowedIPs = {address}" in server_conf


def test_the_appliance_group_may_read_the_client_configs_it_hands_out(tmp_path: Path) -> None:
    require_tools("wg")
    group = grp.getgrgid(os.getgid()).gr_name
    variables = {
        **wg_vars(tmp_path),
        "appliance_wireguard_clients_dir": str(tmp_path / "appliance/wireguard-clients"),
        "appliance_wireguard_clients_group": group,
    }
    run = role_run("appliance_wireguard", variables, tmp_path)
    assert run.returncode == 0, run.report()
    folder = tmp_path / "appliance/wireguard-clients"
    assert (folder.stat().st_mode & 0o777, folder.stat().st_gid) == (0o750, os.getgid())
    for name in ("alice", "bob"):
        conf = folder / f"{name}.conf"
        assert (conf.stat().st_mode & 0o777, conf.stat().st_gid) == (0o640, os.getgid())
    assert (tmp_path / "wireguard").stat().st_mode & 0o777 == 0o700  # the keys stay root only
