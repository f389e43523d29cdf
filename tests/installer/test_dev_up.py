"""The README's first command: installer/dev-up brings the appliance up on its embedded
defaults (SQLite, SoftHSM2 token with the CA, demo directory) and serves it on 127.0.0.1.
Run twice to show it is idempotent; a demo person signs in through the served pages."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.cli.test_core_commands import free_port
from tests.fixtures.pdfs import make_pdf

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.hsm, pytest.mark.ldap]


def _start_dev_up(
    dev_dir: Path, port: int, ldap_port: int, smtp_port: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "APPLIANCE_DEV_DIR": str(dev_dir),
        "APPLIANCE_PORT": str(port),
        "APPLIANCE_DEV_LDAP_PORT": str(ldap_port),
        "APPLIANCE_DEV_SMTP_PORT": str(smtp_port),
    }
    for inherited in ("APPLIANCE_CONFIG", "SOFTHSM2_CONF", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(inherited, None)
    return subprocess.Popen(
        [str(REPO / "installer" / "dev-up")],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def _wait_ready(base: str, server: subprocess.Popen[bytes], log: Path) -> dict[str, object]:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"dev-up exited with {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
                return json.loads(response.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"dev-up did not serve a ready appliance in time:\n{log.read_text()[-4000:]}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


@pytest.fixture
def dev_site(tmp_path: Path) -> Iterator[tuple[Path, int, int, int, Path]]:
    dev_dir = tmp_path / "dev"
    yield dev_dir, free_port(), free_port(), free_port(), tmp_path / "dev-up.log"
    # the demo slapd and the mail sink run on in the background, as dev-up leaves them
    for pidfile in (dev_dir / "slapd" / "slapd.pid", dev_dir / "mail" / "sink.pid"):
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)


def _sign_in(base: str, username: str, password: str) -> str:
    jar = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = jar.open(f"{base}/login", timeout=10).read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, "the login page has no CSRF token"
    form = urllib.parse.urlencode({"csrf_token": token.group(1), "username": username, "password": password})
    with jar.open(f"{base}/login", data=form.encode(), timeout=30) as response:
        return response.read().decode()


def _code_mailed_to_a_colleague(base: str, dev_dir: Path, password: str) -> str:
    """The README's first contract, through the API: zhang.wei sends a PDF to li.na, who asks
    for a verification code; what `installer/dev-mail` shows of the mail that brought it."""

    def token(username: str) -> dict[str, str]:
        issued = requests.post(
            f"{base}/api/v1/auth/tokens",
            json={"username": username, "password": password, "name": "dev-up test"},
            timeout=30,
        )
        assert issued.status_code == 201, issued.text
        return {"Authorization": f"Bearer {issued.json()['token']}"}

    initiator, signer = token("zhang.wei"), token("li.na")
    created = requests.post(
        f"{base}/api/v1/contracts",
        data={"title": "First contract", "not_excluded": "true"},
        files={"file": ("first.pdf", make_pdf(), "application/pdf")},
        headers=initiator,
        timeout=60,
    ).json()
    field = {"page": 1, "x": 72, "y": 72, "width": 180, "height": 60}
    added = requests.post(
        f"{base}/api/v1/contracts/{created['id']}/parties",
        json={"kind": "person", "username": "li.na", "fields": [field]},
        headers=initiator,
        timeout=30,
    ).json()
    requests.post(f"{base}/api/v1/contracts/{created['id']}/send", headers=initiator, timeout=30)
    party = added["parties"][0]["id"]
    sent = requests.post(
        f"{base}/api/v1/contracts/{created['id']}/parties/{party}/code", headers=signer, timeout=30
    )
    assert sent.status_code == 200, sent.text
    shown = subprocess.run(
        [str(REPO / "installer" / "dev-mail"), "1"],
        env={**os.environ, "APPLIANCE_DEV_DIR": str(dev_dir)},
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout


def test_dev_up_serves_the_appliance_and_is_idempotent(
    dev_site: tuple[Path, int, int, int, Path],
) -> None:
    dev_dir, port, ldap_port, smtp_port, log = dev_site
    base = f"http://127.0.0.1:{port}"
    for round_number in range(2):
        server = _start_dev_up(dev_dir, port, ldap_port, smtp_port, log)
        try:
            ready = _wait_ready(base, server, log)
            assert ready["status"] == "ready"
            assert set(ready["checks"]) == {"database", "storage", "hsm", "directory"}  # type: ignore[arg-type]
            logins = (dev_dir / "demo-logins.txt").read_text()
            password = re.search(r"password for every demo person: (\S+)", logins)
            assert password and "zhang.wei" in logins
            assert "Zhang Wei" in _sign_in(base, "zhang.wei", password.group(1))
            with urllib.request.urlopen(f"{base}/pki/ca", timeout=10) as response:
                assert response.read()[:1] == b"\x30"  # a DER certificate from the HSM-held CA
            if round_number == 0:
                mail = _code_mailed_to_a_colleague(base, dev_dir, password.group(1))
                assert "To: li.na@" in mail and re.search(r"^\s+[0-9]{6,8}\s*$", mail, re.MULTILINE), mail
        finally:
            _stop(server)
    output = log.read_text()
    assert "already exists; left unchanged" in output  # the second run kept the first run's set-up
