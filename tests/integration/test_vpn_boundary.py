"""The VPN boundary with real source addresses: the appliance (gunicorn) runs in a network
namespace of its own, and a client namespace joined to it by a veth pair calls it from an
address inside `allowed_networks` (the VPN range) and from one outside it."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.config import load_config
from appliance.db import create_db_engine, migrate_database, transaction
from appliance.pki.bootstrap import init_pki
from appliance.pki.ca import make_context
from appliance.services import build_services
from tests.fixtures.hsm import write_pki_config

pytestmark = pytest.mark.hsm

SERVER, INSIDE, OUTSIDE = "10.99.0.1", "10.99.0.10", "10.99.0.20"
VPN_RANGE = "10.99.0.0/28"  # .10 is in it, .20 is not
PORT = 8080


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("curl") is None:
        pytest.skip("network namespaces need root, iproute2 and curl")
    tag = secrets.token_hex(3)
    server, client = f"aps{tag}", f"apc{tag}"
    created = _run("ip", "netns", "add", server)
    if created.returncode != 0:
        pytest.skip(f"network namespaces cannot be created here: {created.stderr.strip()}")
    try:
        _run("ip", "netns", "add", client)
        peer = ("peer", "name", f"v{tag}c", "netns", client)
        steps = [
            ("ip", "link", "add", f"v{tag}s", "netns", server, "type", "veth", *peer),
            ("ip", "-n", server, "addr", "add", f"{SERVER}/24", "dev", f"v{tag}s"),
            ("ip", "-n", client, "addr", "add", f"{INSIDE}/24", "dev", f"v{tag}c"),
            ("ip", "-n", client, "addr", "add", f"{OUTSIDE}/24", "dev", f"v{tag}c"),
            ("ip", "-n", server, "link", "set", f"v{tag}s", "up"),
            ("ip", "-n", client, "link", "set", f"v{tag}c", "up"),
            ("ip", "-n", server, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _run(*step)
            assert done.returncode == 0, f"{' '.join(step)}: {done.stderr}"
        yield server, client
    finally:
        _run("ip", "netns", "del", client)
        _run("ip", "netns", "del", server)


@pytest.fixture
def appliance_in(namespaces: tuple[str, str], softhsm: Any, tmp_path: Path) -> Iterator[str]:
    """gunicorn serving a PKI-initialised appliance on SERVER:PORT inside the server namespace."""
    server, client = namespaces
    path = write_pki_config(
        tmp_path,
        softhsm,
        private_cloud_address=f"http://{SERVER}:{PORT}",
        server={"bind": SERVER, "port": PORT, "workers": 1},
        network={"allowed_networks": [VPN_RANGE], "trusted_proxies": []},
    )
    config = load_config(path, environ={})
    migrate_database(create_db_engine(config.database))
    services = build_services(config)
    with transaction(services.sessions) as session:
        init_pki(session, make_context(services.custody, config, services.clock))
    services.engine.dispose()
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        ["ip", "netns", "exec", server, sys.executable, "-m", "appliance", "--config", str(path), "serve"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while _status(client, INSIDE, "/healthz")[0] != 200:
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.5)
        yield client
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
        log.close()


def _status(client: str, source: str, path: str) -> tuple[int, str]:
    answer = _run(
        "ip",
        "netns",
        "exec",
        client,
        "curl",
        "-s",
        "--max-time",
        "5",
        "--interface",
        source,
        "-w",
        "\n%{http_code}",
        f"http://{SERVER}:{PORT}{path}",
    )
    body, _, code = answer.stdout.rpartition("\n")
    return int(code or 0), body


def test_only_the_vpn_range_reaches_the_appliance_and_its_discovery_document(appliance_in: str) -> None:
    client = appliance_in
    status, body = _status(client, INSIDE, "/.well-known/esign-configuration")
    assert status == 200, body
    assert json.loads(body)["private_cloud_address"] == f"http://{SERVER}:{PORT}"
    for path in ("/.well-known/esign-configuration", "/login", "/api/v1/"):
        status, body = _status(client, OUTSIDE, path)
        assert status == 403, (path, body)
        assert OUTSIDE in body and "VPN" in body  # it says what to do
    assert _status(client, INSIDE, "/login")[0] == 200
