"""The reference client (clients/python) end to end against a running appliance: gunicorn
with the PKI, the real slapd people and mail to a test SMTP server. From the private-cloud
address and the root fingerprint it checks the discovery document, signs in, finds the
contract in the to-do list, asks for a code, signs, downloads the signed PDF (checked by the
independent validators), and checks a webhook delivery as the appliance signs it; the
`esign` command does the same steps; and the package installs on its own."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from appliance.config import load_config
from appliance.db import create_db_engine, migrate_database, transaction
from appliance.notify.webhooks import sign as sign_delivery
from appliance.pki.bootstrap import init_pki
from appliance.pki.ca import make_context
from appliance.services import build_services
from tests.api.conftest import ARCHIVISTS, ORG_ADMINS, password_of
from tests.fixtures.hsm import hsm_section
from tests.fixtures.independent import check_signed_contract
from tests.fixtures.ldap import OPENLDAP_ROLE_GROUPS, SERVICE_PASSWORD, free_port, openldap_section
from tests.fixtures.pdfs import make_pdf
from tests.fixtures.smtp import SmtpServer

CLIENT_SOURCE = Path(__file__).resolve().parents[2] / "clients" / "python"
sys.path.insert(0, str(CLIENT_SOURCE / "src"))

from esign_client import Client, DiscoveryError, discover  # noqa: E402
from esign_client.webhooks import verify  # noqa: E402

pytestmark = [pytest.mark.hsm, pytest.mark.ldap]

FIELD = {"page": 1, "x": 72, "y": 72, "width": 180, "height": 60}
CODE = re.compile(r"^\s+(\d{6,8})\s*$", re.M)


class Appliance:
    def __init__(self, url: str, root_sha256: str, services: Any, smtp: SmtpServer) -> None:
        self.url, self.root_sha256, self.services, self.smtp = url, root_sha256, services, smtp

    def last_code(self, email: str) -> str:
        for message in reversed(self.smtp.received):
            if message["To"] == email and (found := CODE.search(message.get_content())):
                return found.group(1)
        raise AssertionError(f"no code mailed to {email}")


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory, softhsm: Any, slapd: Any) -> Iterator[Appliance]:
    base = tmp_path_factory.mktemp("client-e2e")
    (base / "blobs").mkdir()
    secret, bind = base / "session-secret", base / "bind-password"
    secret.write_text(secrets.token_urlsafe(48))
    bind.write_text(SERVICE_PASSWORD)
    port = free_port()
    smtp = SmtpServer()
    smtp.start()
    raw = {
        "private_cloud_address": f"http://127.0.0.1:{port}",
        "server": {"port": port, "workers": 2},
        "network": {"allowed_networks": ["127.0.0.0/8"], "trusted_proxies": []},
        "database": {"url": f"sqlite:///{base}/appliance.db"},
        "storage": {"path": str(base / "blobs")},
        "auth": {"session_secret_file": str(secret)},
        "hsm": hsm_section(softhsm),
        "directory": openldap_section(
            slapd,
            bind_password_file=str(bind),
            role_groups={**OPENLDAP_ROLE_GROUPS, "org_admin": [ORG_ADMINS], "archive_admin": [ARCHIVISTS]},
        ),
        "mail": {"enabled": True, "host": "127.0.0.1", "port": smtp.port, "starttls": False},
        "codes": {"per_signer_per_hour": 1000, "per_address_per_hour": 100_000},
    }
    path = base / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path, environ={})
    migrate_database(create_db_engine(config.database))
    services = build_services(config)
    with transaction(services.sessions) as session:
        root = init_pki(session, make_context(services.custody, config, services.clock)).root.der
    path_env = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path_env, "PROMETHEUS_MULTIPROC_DIR": str(base / "metrics")}
    log = base / "gunicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "appliance", "--config", str(path), "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield Appliance(url, hashlib.sha256(root).hexdigest(), services, smtp)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        services.engine.dispose()
        smtp.stop()


def _sent_to_alice(appliance: Appliance, bob: Client) -> tuple[int, int]:
    """A contract of bob's for alice, sent; its id and alice's party id (bob's token, raw HTTP)."""
    api, auth = f"{appliance.url}/api/v1", bob._http.headers
    created = requests.post(
        f"{api}/contracts",
        headers=auth,
        data={"title": f"SDK contract {secrets.token_hex(2)}", "not_excluded": "true"},
        files={"file": ("sdk.pdf", make_pdf(pages=1), "application/pdf")},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    contract_id = created.json()["id"]
    party = {"kind": "person", "username": "alice", "fields": [FIELD]}
    added = requests.post(f"{api}/contracts/{contract_id}/parties", headers=auth, json=party, timeout=30)
    assert added.status_code == 201, added.text
    assert requests.post(f"{api}/contracts/{contract_id}/send", headers=auth, timeout=60).status_code == 200
    return contract_id, added.json()["parties"][0]["id"]


def _with_certificate(appliance: Appliance, alice: Client) -> None:
    api, auth = f"{appliance.url}/api/v1", alice._http.headers
    if requests.get(f"{api}/certificates/mine", headers=auth, timeout=30).json()["certificate"] is None:
        agreement = requests.get(f"{api}/certificates/agreement", headers=auth, timeout=30).json()
        consent = {
            "agreement_version": agreement["version"],
            "agreement_sha256": agreement["sha256"],
            "locale": agreement["locale"],
        }
        issued = requests.post(f"{api}/certificates/mine", headers=auth, json=consent, timeout=60)
        assert issued.status_code == 201, issued.text


def test_the_client_checks_the_appliance_signs_in_and_signs(appliance: Appliance, tmp_path: Path) -> None:
    found = discover(appliance.url, appliance.root_sha256)
    assert found.api_base == f"{appliance.url}/api/v1"
    with pytest.raises(DiscoveryError, match="not the one whose fingerprint"):
        discover(appliance.url, "0" * 64)

    bob = Client.login(found, "bob", password_of("bob"), device="SDK test")
    alice = Client.login(found, "alice", password_of("alice"), device="SDK test")
    _with_certificate(appliance, alice)
    contract_id, party_id = _sent_to_alice(appliance, bob)
    assert contract_id in [item["id"] for item in alice.todo()]
    assert alice.contract(contract_id)["your_turn"] == [party_id]
    alice.request_code(contract_id, party_id)
    signed = alice.sign(contract_id, party_id, appliance.last_code("alice@example.org"))
    assert signed["state"] == "completed"
    check_signed_contract(appliance.services, alice.download(contract_id), 1, tmp_path)

    body = json.dumps({"type": "contract.completed", "contract": {"id": contract_id}}).encode()
    stamp = int(time.time())
    headers = {
        "Esign-Webhook-Timestamp": str(stamp),
        "Esign-Webhook-Signature": sign_delivery("s3cret", stamp, body),
    }
    assert verify("s3cret", headers, body)
    assert not verify("s3cret", headers, body + b"x") and not verify("other", headers, body)


def test_the_esign_command_signs_from_a_terminal(appliance: Appliance, tmp_path: Path) -> None:
    found = discover(appliance.url, appliance.root_sha256)
    bob = Client.login(found, "bob", password_of("bob"))
    alice = Client.login(found, "alice", password_of("alice"))
    _with_certificate(appliance, alice)
    contract_id, party_id = _sent_to_alice(appliance, bob)
    token = alice._http.headers["Authorization"].removeprefix("Bearer ")
    env = {
        **os.environ,
        "PYTHONPATH": str(CLIENT_SOURCE / "src"),
        "ESIGN_TOKEN": token,
        "HOME": str(tmp_path),
    }
    esign = [
        sys.executable,
        "-m",
        "esign_client.cli",
        "--address",
        appliance.url,
        "--ca-sha256",
        appliance.root_sha256,
    ]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*esign, *args], capture_output=True, text=True, env=env, timeout=120)

    assert str(contract_id) in run("todo").stdout
    assert run("code", str(contract_id), str(party_id)).returncode == 0
    signed = run("sign", str(contract_id), str(party_id), appliance.last_code("alice@example.org"))
    assert signed.returncode == 0 and "completed" in signed.stdout, signed.stderr
    assert run("download", str(contract_id), str(tmp_path / "signed.pdf")).returncode == 0
    assert (tmp_path / "signed.pdf").read_bytes().startswith(b"%PDF")
    refused = subprocess.run(
        [*esign[:-1], "f" * 64, "todo"], capture_output=True, text=True, env=env, timeout=60
    )
    assert refused.returncode == 1 and "stop and call IT" in refused.stderr


def test_the_client_installs_on_its_own(tmp_path: Path) -> None:
    target = tmp_path / "site"
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(CLIENT_SOURCE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    assert (target / "esign_client" / "discovery.py").exists() and (target / "bin" / "esign").exists()
    helped = subprocess.run(
        [sys.executable, "-m", "esign_client.cli", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(target)},
        cwd=tmp_path,
        timeout=60,
    )
    assert helped.returncode == 0 and "private-cloud address" in helped.stdout
