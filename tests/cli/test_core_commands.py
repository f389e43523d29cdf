"""The operator CLI: init, migrate, serve (gunicorn, two workers), version, and their errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from appliance import __version__
from appliance.config import load_config
from appliance.db import create_db_engine, create_session_factory, head_revision
from appliance.models import AuditEvent


def appliance(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_version_and_help() -> None:
    assert appliance("version").stdout.strip() == __version__
    for command in ("init", "migrate", "serve", "check-config", "version"):
        result = appliance(command, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, command


def test_init_is_idempotent_and_keeps_secrets(tmp_path: Path) -> None:
    first = appliance("init", "--dir", str(tmp_path / "site"))
    assert first.returncode == 0, first.stderr
    secret = (tmp_path / "site" / "secrets" / "session-secret").read_text()
    assert oct((tmp_path / "site" / "secrets" / "session-secret").stat().st_mode & 0o777) == "0o600"
    second = appliance("init", "--dir", str(tmp_path / "site"))
    assert second.returncode == 0 and "left unchanged" in second.stdout
    assert (tmp_path / "site" / "secrets" / "session-secret").read_text() == secret
    check = appliance("--config", str(tmp_path / "site" / "config.yaml"), "check-config")
    assert check.returncode == 0, check.stderr


def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    result = appliance("--config", str(tmp_path / "nope.yaml"), "migrate")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"{tmp_path / 'nope.yaml'}: config file not found (run `appliance init` to write one)"
    )


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    appliance("init", "--dir", str(tmp_path / "site"))
    result = appliance("--config", str(tmp_path / "site" / "config.yaml"), "serve")
    assert result.returncode == 1
    assert "run `appliance migrate` first" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [("verify", "doc.pdf"), ("jobs", "list")])
def test_database_commands_refuse_an_unmigrated_database(tmp_path: Path, command: tuple[str, ...]) -> None:
    appliance("init", "--dir", str(tmp_path / "site"))
    config = tmp_path / "site" / "config.yaml"
    raw = yaml.safe_load(config.read_text())
    raw.pop("hsm")  # these commands need the database, not the token
    config.write_text(yaml.safe_dump(raw))
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4\n")
    args = [part.replace("doc.pdf", str(tmp_path / "doc.pdf")) for part in command]
    result = appliance("--config", str(config), *args)
    assert result.returncode == 1
    assert "run `appliance migrate` first" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def served_site(tmp_path: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    site = tmp_path / "site"
    assert appliance("init", "--dir", str(site), "--port", str(port)).returncode == 0
    config = site / "config.yaml"
    raw = yaml.safe_load(config.read_text())
    raw.pop("hsm")  # this test is about the web tier only
    config.write_text(yaml.safe_dump(raw))
    assert appliance("--config", str(config), "migrate").returncode == 0
    server = subprocess.Popen(
        [sys.executable, "-m", "appliance", "--config", str(config), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "PATH": _venv_path()},
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, server)
        yield base, server.pid
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _venv_path() -> str:
    return f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"


def _wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stdout.read().decode() if server.stdout else ""
            pytest.fail(f"appliance serve exited early:\n{output}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail("appliance serve did not answer within 30 s")


def test_serve_runs_gunicorn_workers_and_aggregates_metrics(served_site: tuple[str, int]) -> None:
    base, master_pid = served_site
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    deadline = time.monotonic() + 20
    # the first worker may answer before the master has forked the second
    while len(children.read_text().split()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(children.read_text().split()) == 2  # server.workers from the starter config
    for _ in range(40):
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
            assert response.status == 200
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    readyz_lines = [
        line
        for line in metrics.splitlines()
        if line.startswith('appliance_http_requests_total{endpoint="health.readyz"')
    ]
    # Whichever worker answers /metrics, it reports all 40 requests of every worker.
    assert readyz_lines and float(readyz_lines[0].split()[-1]) == 40.0


def test_migrate_records_a_schema_change_once(tmp_path: Path) -> None:
    appliance("init", "--dir", str(tmp_path / "site"))
    config = tmp_path / "site" / "config.yaml"
    first = appliance("--config", str(config), "migrate")
    assert first.returncode == 0, first.stderr
    again = appliance("--config", str(config), "migrate")  # nothing to apply: nothing to record
    assert again.returncode == 0, again.stderr
    cfg = load_config(config)
    with create_session_factory(create_db_engine(cfg.database, cfg.secrets))() as session:
        logged = session.scalars(select(AuditEvent).where(AuditEvent.action == "ops.migrated")).all()
    assert [json.loads(e.details) for e in logged] == [{"from": None, "to": head_revision()}]
