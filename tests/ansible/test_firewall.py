"""The firewall role renders an nftables ruleset that `nft -c` accepts; loaded inside a
network namespace made for the test (never this machine's own network) it lets only the
configured ranges reach HTTPS."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ansible.conftest import require_tools, role_run

pytestmark = pytest.mark.slow


def firewall_vars(path: Path, apply: bool = False) -> dict[str, object]:
    return {
        "appliance_firewall_manage_package": False,
        "appliance_firewall_allowed_networks": ["10.8.0.0/16", "192.0.2.0/24", "fd00:8::/64"],
        "appliance_firewall_ssh_networks": ["10.20.0.0/24"],
        "appliance_firewall_config_file": str(path),
        "appliance_firewall_apply": apply,
        "appliance_firewall_service_manager": "none",
    }


def test_firewall_renders_checks_and_is_idempotent(tmp_path: Path) -> None:
    require_tools("nft", "unshare")
    rules = tmp_path / "etc/nftables.conf"
    check = role_run("appliance_firewall", firewall_vars(rules), tmp_path, "--check")
    assert check.returncode == 0, check.report()
    assert not rules.exists()  # check mode writes nothing

    first = role_run("appliance_firewall", firewall_vars(rules), tmp_path)
    assert first.returncode == 0, first.report()
    assert rules.stat().st_mode & 0o777 == 0o600
    second = role_run("appliance_firewall", firewall_vars(rules), tmp_path)
    assert second.changed == 0, second.changed_tasks()

    text = rules.read_text()
    assert "policy drop" in text
    assert "elements = { 10.8.0.0/16, 192.0.2.0/24 }" in text
    assert "elements = { fd00:8::/64 }" in text
    assert "ip saddr @intranet_v4 tcp dport { 443, 80 } accept" in text
    assert "ip saddr @admin_v4 tcp dport 22 accept" in text

    # Loaded into a private network namespace, never into this machine's.
    loaded = subprocess.run(
        ["unshare", "--net", "sh", "-c", f"nft -f {rules} && nft list ruleset"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "table inet appliance" in loaded.stdout
    assert "10.8.0.0/16" in loaded.stdout
    host = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False)
    assert "appliance" not in host.stdout


def test_firewall_lets_only_allowed_ranges_reach_https(tmp_path: Path) -> None:
    """Two namespaces joined by a veth pair: the server's ruleset accepts 443 from an
    allowed address and drops it from another one."""
    require_tools("nft", "ip", "unshare", "curl")
    if shutil.which("python3") is None:
        pytest.skip("python3 missing")
    rules = tmp_path / "nftables.conf"
    variables = firewall_vars(rules)
    variables["appliance_firewall_allowed_networks"] = ["192.0.2.10/32"]
    assert role_run("appliance_firewall", variables, tmp_path).returncode == 0
    tag = secrets.token_hex(3)
    server, client = f"fws{tag}", f"fwc{tag}"
    script = f"""
set -e
ip netns add {server}
ip netns add {client}
trap 'ip netns del {server}; ip netns del {client}' EXIT
ip link add v{tag}s netns {server} type veth peer name v{tag}c netns {client}
ip -n {server} addr add 192.0.2.1/24 dev v{tag}s
ip -n {client} addr add 192.0.2.10/24 dev v{tag}c
ip -n {client} addr add 192.0.2.20/24 dev v{tag}c
ip -n {server} link set v{tag}s up; ip -n {client} link set v{tag}c up
ip -n {server} link set lo up; ip -n {client} link set lo up
ip netns exec {server} nft -f {rules}
ip netns exec {server} python3 -m http.server 443 --bind 192.0.2.1 >/dev/null 2>&1 &
server_pid=$!
sleep 1
probe() {{
  ip netns exec {client} curl -s -o /dev/null -w '%{{http_code}}' --max-time 3 \
    --interface "$1" http://192.0.2.1:443/ || true
}}
ok=$(probe 192.0.2.10)
blocked=$(probe 192.0.2.20)
kill $server_pid
echo "allowed=$ok blocked=$blocked"
"""
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False, timeout=60)
    if "Operation not permitted" in result.stderr:
        pytest.skip("network namespaces are not permitted here")
    assert result.returncode == 0, result.stderr
    assert "allowed=200" in result.stdout
    assert "blocked=000" in result.stdout
