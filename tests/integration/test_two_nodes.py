"""Two nodes on one PostgreSQL (DESIGN section 6): two `appliance serve` (gunicorn) nodes on
their own 127.0.0.1 ports, sharing the database, the blob folder, the HSM token and the
session secret, behind one nginx upstream. Nothing a request needs lives in one node's
memory: a session made on one node works on the other, wrong codes and failed sign-ins are
counted across nodes, scheduled jobs run on exactly one, two signers on different nodes both
land in the final PDF, and a node killed in the middle of a signature loses nothing and
leaves no half state."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from sqlalchemy import func, select

from appliance.audit import verify_chain
from appliance.auth.records import ClientInfo, Principal
from appliance.config import load_config
from appliance.db import scratch_schema
from appliance.models import (
    ContractState,
    DocumentVersion,
    JobRun,
    Organisation,
    Role,
)
from appliance.services import Services, build_services
from appliance.workflow.certificates import Consent, apply_personal_certificate, certificate_agreement
from tests.conftest import PG_URL_ENV, require_backend
from tests.fixtures.hsm import hsm_section
from tests.fixtures.independent import check_signed_contract
from tests.fixtures.ldap import free_port
from tests.fixtures.nginx import NginxProxy, start_upstream
from tests.fixtures.pdfs import make_pdf
from tests.fixtures.people import provision_person
from tests.fixtures.smtp import SmtpServer

pytestmark = [pytest.mark.pg, pytest.mark.hsm, pytest.mark.slow]

CLIENT = ClientInfo("127.0.0.1", "two-nodes test")
ADMIN, ADMIN_PASSWORD = "break-glass", "Two-Nodes-Admin-2026!"
FIELD = {"page": 1, "x": 72, "y": 72, "width": 180, "height": 60}
CODE = re.compile(r"^\s+(\d{6,8})\s*$", re.M)


@dataclass
class Node:
    port: int
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    nodes: list[Node]
    proxy: str
    services: Services
    smtp: Any
    tokens: dict[str, str] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def last_code(self, who: str) -> str:
        for message in reversed(self.smtp.received):
            if message["To"] == self.emails[who]:
                found = CODE.search(message.get_content())
                if found:
                    return found.group(1)
        raise AssertionError(f"no code for {who}")


def _start(node: Node, env: dict[str, str]) -> None:
    with node.log.open("ab") as log:
        node.process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "--config", str(node.config), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert node.process.poll() is None, node.log.read_text()[-3000:]
        try:
            if requests.get(f"{node.url}/readyz", timeout=10).status_code == 200:  # the HSM too
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"node {node.port} did not start: {node.log.read_text()[-3000:]}")


def _node_env(metrics: Path) -> dict[str, str]:
    """A node's environment: this venv's gunicorn, a metrics folder of its own."""
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}


def _stop(node: Node, sig: int = signal.SIGTERM) -> None:
    if node.process is not None and node.process.poll() is None:
        os.killpg(node.process.pid, sig)
        node.process.wait(timeout=30)


def _appliance(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "appliance", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, softhsm: Any) -> Iterator[Cluster]:
    base_url = os.environ.get(PG_URL_ENV)
    require_backend("PostgreSQL", bool(base_url), f"{PG_URL_ENV} is not set")
    require_backend("nginx", shutil.which("nginx") is not None, "nginx is not installed")
    assert base_url is not None
    base = tmp_path_factory.mktemp("two-nodes")
    smtp_session = SmtpServer()
    smtp_session.start()
    with contextlib.ExitStack() as stack:
        stack.callback(smtp_session.stop)
        database = stack.enter_context(scratch_schema(base_url, "two_nodes"))
        secret = base / "session-secret"
        secret.write_text(secrets.token_urlsafe(48))
        (base / "blobs").mkdir()
        ports = [free_port(), free_port()]
        raw: dict[str, Any] = {
            "private_cloud_address": "http://127.0.0.1:9",
            # one worker per node: SoftHSM2 reads its token files once per process, and a process
            # that does so while another process rewrites them (a login) misses the token for good;
            # `_start` loads it in each node's worker in turn, which one worker makes certain
            "server": {"workers": 1},
            "network": {"allowed_networks": ["127.0.0.0/8"], "trusted_proxies": ["127.0.0.1/32"]},
            "database": {"url": database},
            "storage": {"path": str(base / "blobs")},
            "auth": {"session_secret_file": str(secret), "directory_recheck_minutes": 24 * 60},
            "hsm": hsm_section(softhsm),
            "mail": {"enabled": True, "host": "127.0.0.1", "port": smtp_session.port, "starttls": False},
            "codes": {"per_signer_per_hour": 1000, "per_address_per_hour": 100_000},
        }
        nodes = []
        for number, port in enumerate(ports):
            path = base / f"node{number}.yaml"
            path.write_text(yaml.safe_dump({**raw, "server": {**raw["server"], "port": port}}))
            nodes.append(Node(port, path, base / f"node{number}.log"))
        _appliance("--config", str(nodes[0].config), "migrate")
        _appliance("--config", str(nodes[0].config), "pki", "init")
        admin = subprocess.run(
            [
                sys.executable,
                "-m",
                "appliance",
                "--config",
                str(nodes[0].config),
                "admin",
                "create",
                ADMIN,
                "--password-stdin",
            ],
            input=ADMIN_PASSWORD + "\n",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert admin.returncode == 0, admin.stderr
        services = build_services(load_config(nodes[0].config, environ={}))
        proxy: NginxProxy | None = None
        try:
            for number, node in enumerate(nodes):
                _start(node, _node_env(base / f"metrics{number}"))
            proxy = start_upstream(base / "nginx", ports)
            cluster = Cluster(nodes, proxy.url, services, smtp_session)
            _people(cluster)
            yield cluster
        finally:
            if proxy is not None:
                proxy.stop()
            for node in nodes:
                _stop(node)
            services.engine.dispose()


def _people(cluster: Cluster) -> None:
    services, now = cluster.services, datetime.now(UTC)
    with services.sessions.begin() as session:
        org = Organisation(name="两节点测试有限公司", code="two-nodes", created_at=now)
        session.add(org)
        session.flush()
        org_id = org.id
    agreement = certificate_agreement("en")
    consent = Consent(agreement.version, agreement.sha256, agreement.locale)
    for username, roles in (("initiator", {Role.INITIATOR}), ("signer1", set()), ("signer2", set())):
        email = f"{username}@two-nodes.example"
        user_id = provision_person(services, username, f"Person {username}", email, org_id, *roles)
        cluster.tokens[username] = services.auth.create_token(user_id, "two nodes", CLIENT).token
        cluster.emails[username] = email
        if username.startswith("signer"):
            principal = Principal(user_id, username, f"Person {username}", frozenset({Role.EMPLOYEE}), False)
            apply_personal_certificate(services.workflow, principal, CLIENT, consent)


def _contract(cluster: Cluster, parties: list[str], title: str) -> dict[str, Any]:
    """A parallel contract of the initiator's with those signers, sent (through the proxy)."""
    api = f"{cluster.proxy}/api/v1"
    created = requests.post(
        f"{api}/contracts",
        headers=cluster.auth("initiator"),
        data={"title": title, "not_excluded": "true", "routing": "parallel"},
        files={"file": ("two-nodes.pdf", make_pdf(pages=1), "application/pdf")},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    contract = created.json()
    for who in parties:
        added = requests.post(
            f"{api}/contracts/{contract['id']}/parties",
            headers=cluster.auth("initiator"),
            json={"kind": "person", "username": who, "fields": [FIELD], "routing_order": 1},
            timeout=30,
        )
        assert added.status_code == 201, added.text
        contract = added.json()
    sent = requests.post(
        f"{api}/contracts/{contract['id']}/send", headers=cluster.auth("initiator"), timeout=60
    )
    assert sent.status_code == 200, sent.text
    return sent.json()


def _party(contract: dict[str, Any], who: str) -> int:
    return next(p["id"] for p in contract["parties"] if p["name"] == f"Person {who}")


def test_a_session_made_on_one_node_works_on_the_other(cluster: Cluster) -> None:
    first, second = cluster.nodes
    browser = requests.Session()
    page = browser.get(f"{first.url}/login", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    signed_in = browser.post(
        f"{first.url}/login",
        data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    assert signed_in.status_code == 303, signed_in.text
    account = browser.get(f"{second.url}/account", allow_redirects=False, timeout=10)
    assert account.status_code == 200 and ADMIN in account.text
    # and through the proxy, whichever node answers
    assert all(browser.get(f"{cluster.proxy}/account", timeout=10).status_code == 200 for _ in range(4))


def test_wrong_codes_and_failed_sign_ins_are_counted_across_nodes(cluster: Cluster) -> None:
    contract = _contract(cluster, ["signer1"], "Counted across nodes")
    party = f"/api/v1/contracts/{contract['id']}/parties/{_party(contract, 'signer1')}"
    first, second = cluster.nodes
    assert (
        requests.post(f"{first.url}{party}/code", headers=cluster.auth("signer1"), timeout=30).status_code
        == 200
    )
    code = cluster.last_code("signer1")
    wrong = f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"
    for node in (first, second, first, second, first):  # the five attempts a code has, split
        refused = requests.post(
            f"{node.url}{party}/sign", headers=cluster.auth("signer1"), json={"code": wrong}, timeout=30
        )
        assert refused.status_code in (400, 409, 422), refused.text
    late = requests.post(
        f"{second.url}{party}/sign", headers=cluster.auth("signer1"), json={"code": code}, timeout=30
    )
    assert late.status_code != 200, late.text  # no attempt is left, on either node

    refusals, ghost = [], f"ghost-{secrets.token_hex(3)}"
    for attempt in range(12):
        node = cluster.nodes[attempt % 2]
        answer = requests.post(
            f"{node.url}/api/v1/auth/tokens",
            json={"username": ghost, "password": "wrong-password", "name": "x"},
            timeout=30,
        )
        refusals.append(answer.status_code)
    assert 429 in refusals, refusals  # the throttle counts both nodes' failures together


def test_scheduled_jobs_run_on_exactly_one_node(cluster: Cluster) -> None:
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "appliance", "--config", str(node.config), "jobs", "run-due"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for node in cluster.nodes
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    done: dict[str, int] = {}
    for stdout, _ in outputs:
        for line in stdout.splitlines():
            name, _, outcome = line.partition(": ")
            if outcome.startswith("done"):
                done[name] = done.get(name, 0) + 1
    with cluster.services.sessions() as session:
        names = set(session.scalars(select(JobRun.name)))
    assert names and set(done) <= names
    assert all(count == 1 for count in done.values()), done  # the other saw it running or done


def test_two_signers_on_different_nodes_both_land_in_the_final_pdf(cluster: Cluster, tmp_path: Path) -> None:
    contract = _contract(cluster, ["signer1", "signer2"], "Two nodes, two signers")
    paths = {
        who: f"/api/v1/contracts/{contract['id']}/parties/{_party(contract, who)}"
        for who in ("signer1", "signer2")
    }
    codes = {}
    for who, path in paths.items():
        assert (
            requests.post(f"{cluster.proxy}{path}/code", headers=cluster.auth(who), timeout=30).status_code
            == 200
        )
        codes[who] = cluster.last_code(who)
    answers: dict[str, requests.Response] = {}
    start = threading.Barrier(2)

    def sign(who: str, node: Node) -> None:
        start.wait()
        answers[who] = requests.post(
            f"{node.url}{paths[who]}/sign", headers=cluster.auth(who), json={"code": codes[who]}, timeout=120
        )

    threads = [
        threading.Thread(target=sign, args=("signer1", cluster.nodes[0])),
        threading.Thread(target=sign, args=("signer2", cluster.nodes[1])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {who: a.status_code for who, a in answers.items()} == {"signer1": 200, "signer2": 200}
    final = requests.get(
        f"{cluster.proxy}/api/v1/contracts/{contract['id']}", headers=cluster.auth("initiator"), timeout=30
    ).json()
    assert final["state"] == ContractState.COMPLETED.value
    pdf = requests.get(
        f"{cluster.proxy}/api/v1/contracts/{contract['id']}/documents/current",
        headers=cluster.auth("initiator"),
        timeout=60,
    )
    assert pdf.status_code == 200, pdf.text[:300]
    check_signed_contract(cluster.services, pdf.content, 2, tmp_path)


def _code_for(cluster: Cluster, node: Node, path: str) -> str:
    asked = requests.post(f"{node.url}{path}/code", headers=cluster.auth("signer1"), timeout=30)
    assert asked.status_code == 200, asked.text
    return cluster.last_code("signer1")


def _sign(cluster: Cluster, node: Node, path: str, code: str) -> requests.Response:
    return requests.post(
        f"{node.url}{path}/sign", headers=cluster.auth("signer1"), json={"code": code}, timeout=120
    )


def _blobs(cluster: Cluster) -> set[str]:
    return {p.name for p in cluster.services.config.storage.path.rglob("*") if p.is_file()}


KILL_AT = (0.3, 0.5, 0.7, 0.9)
"""When the node is killed, as a share of an uninterrupted signature's duration on it."""


def test_a_node_killed_mid_signature_loses_nothing_and_leaves_no_half_state(
    cluster: Cluster, tmp_path: Path
) -> None:
    doomed, survivor = cluster.nodes
    durations = []
    for _warm_then_timed in range(2):  # the worker's first signature loads fonts and caches
        timed = _contract(cluster, ["signer1"], "Timed signature")
        path = f"/api/v1/contracts/{timed['id']}/parties/{_party(timed, 'signer1')}"
        code = _code_for(cluster, doomed, path)
        started = time.monotonic()
        assert _sign(cluster, doomed, path, code).status_code == 200
        durations.append(time.monotonic() - started)
    duration = durations[-1]

    outcomes = []
    for share in KILL_AT:
        contract = _contract(cluster, ["signer1"], f"Killed at {share:.0%} of a signature")
        path = f"/api/v1/contracts/{contract['id']}/parties/{_party(contract, 'signer1')}"
        code = _code_for(cluster, doomed, path)
        before = _blobs(cluster)
        attempt = threading.Thread(target=_doomed_sign, args=(cluster, doomed, path, code))
        attempt.start()
        time.sleep(duration * share)
        _stop(doomed, signal.SIGKILL)
        attempt.join()

        with cluster.services.sessions() as session:
            versions = session.scalar(
                select(func.count(DocumentVersion.id)).where(DocumentVersion.contract_id == contract["id"])
            )
            assert verify_chain(session) == []
        state = requests.get(
            f"{survivor.url}/api/v1/contracts/{contract['id']}", headers=cluster.auth("initiator"), timeout=30
        ).json()
        if state["state"] == ContractState.COMPLETED.value:  # it committed before the kill: all of it
            assert versions == 2
            outcomes.append("committed")
        else:  # killed before its commit: nothing of it stayed but, at most, a file for the sweep
            assert (versions, state["parties"][0]["status"]) == (1, "pending")
            outcomes.append("stored, not committed" if _blobs(cluster) - before else "nothing")
            signed = _sign(cluster, survivor, path, _code_for(cluster, survivor, path))
            assert signed.status_code == 200, signed.text
        document = requests.get(
            f"{survivor.url}/api/v1/contracts/{contract['id']}/documents/current",
            headers=cluster.auth("initiator"),
            timeout=60,
        )
        workdir = tmp_path / f"at-{share}"
        workdir.mkdir()
        check_signed_contract(cluster.services, document.content, 1, workdir)
        _start(doomed, _node_env(tmp_path / f"metrics-{share}"))
    # the kills must have landed inside signatures, not only after them
    assert any(outcome != "committed" for outcome in outcomes), (duration, outcomes)


def _doomed_sign(cluster: Cluster, node: Node, path: str, code: str) -> None:
    with contextlib.suppress(requests.RequestException):  # the node dies under it
        _sign(cluster, node, path, code)
