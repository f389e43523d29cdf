"""A complete appliance for bench/flow.py, in a temp dir, on its embedded defaults.

SQLite (or a schema of its own in a PostgreSQL database, with --postgresql), the blob store on
disk, a SoftHSM2 token of its own (SOFTHSM2_CONF points at a token directory inside the temp
dir, for this process and every command it starts), the PKI made by `appliance pki init`, mail
to an aiosmtpd server in this process, and `appliance serve` (gunicorn, the project's gunicorn
config, 2 workers). Everything listens on 127.0.0.1.

People are written straight into the database as the directory would have provisioned them
(there is no directory here), each signer with a personal certificate applied for with
consent, and each person with an API token; or, for the page path, they come from a directory
(bench/_pages.py starts the test suite's slapd) and sign in.
"""

from __future__ import annotations

import io
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import requests
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from appliance.auth.records import ClientInfo, Principal
from appliance.config import AppConfig, load_config
from appliance.db import scratch_schema
from appliance.models import Organisation, Role
from appliance.services import Services, build_services
from appliance.workflow.certificates import Consent, apply_personal_certificate, certificate_agreement
from tests.fixtures.ldap import SERVICE_PASSWORD, free_port
from tests.fixtures.nginx import NginxProxy, start_upstream
from tests.fixtures.people import provision_person

CLIENT = ClientInfo(address="127.0.0.1", user_agent="bench/flow.py")
SIGNER_NAMES = ("张伟", "李娜", "王芳", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周杰", "吴芳")
CODE_LINE = re.compile(r"^\s+([0-9]{6,8})\s*$", re.MULTILINE)
"""The line of a code mail that holds the code (appliance.notify.channels)."""
START_SECONDS = 60
ACCESS_MARK = "bench-access"
SIGN_REQUEST = re.compile(rf"{ACCESS_MARK} POST /api/v1/contracts/\d+/parties/\d+/sign 200 (\d+)")


def make_pdf(payload_bytes: int, seed: int = 1) -> bytes:
    """A plain one-page A4 PDF (a line of text and an incompressible grey image of about
    `payload_bytes`), in one revision with a classic xref table, as an office suite writes it."""
    side = max(1, int(payload_bytes**0.5))
    image = random.Random(seed).randbytes(side * side)
    content = b"BT /F1 18 Tf 72 760 Td (Supply agreement) Tj ET\nq 200 0 0 200 72 520 cm /Im1 Do Q\n"

    def stream(dictionary: str, data: bytes) -> bytes:
        return f"<< {dictionary} /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream"

    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count 1 /Kids [6 0 R] >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        stream("", content),
        stream(
            f"/Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceGray "
            "/BitsPerComponent 8",
            image,
        ),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 3 0 R >> /XObject << /Im1 5 0 R >> >> /Contents 4 0 R >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    out.write(b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets))
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


class MailBox:
    """An SMTP server on 127.0.0.1 that keeps the verification codes it receives, per recipient."""

    def __init__(self) -> None:
        self.port = free_port()
        self._codes: defaultdict[str, queue.Queue[str]] = defaultdict(queue.Queue)
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._running = False

    def start(self) -> None:
        self._controller.start()
        self._running = True

    def stop(self) -> None:
        if self._running:
            self._controller.stop()
            self._running = False

    def _queue(self, address: str) -> queue.Queue[str]:
        with self._lock:
            return self._codes[address.lower()]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content: Any = envelope.original_content or envelope.content
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(preferencelist=("plain",))
        found = CODE_LINE.search(body.get_content()) if body is not None else None
        if found is not None:  # other mail (notices) carries no code
            for address in envelope.rcpt_tos:
                self._queue(address).put(found.group(1))
        return "250 OK"

    def code_for(self, address: str, timeout: float = 30) -> str:
        """The next code mailed to `address` (the caller asked for exactly one)."""
        try:
            return self._queue(address).get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no verification code reached {address} within {timeout:g} s") from None


@dataclass(frozen=True)
class Person:
    user_id: int
    username: str
    display_name: str
    email: str
    token: str


@dataclass(frozen=True)
class Crew:
    """The people of one benchmark client: an initiator and the contract's two signers."""

    initiator: Person
    signers: tuple[Person, Person]


class Site:
    """The appliance in `base`; `start()` sets it up and serves it, `stop()` ends every process."""

    def __init__(
        self,
        base: Path,
        crews: int,
        database_url: str | None = None,
        directory: dict[str, Any] | None = None,
        *,
        nodes: int = 1,
        proxy: bool = False,
    ) -> None:
        self.base = base
        self.database_url = database_url
        """None: the embedded default, SQLite in `base`."""
        self.directory = directory
        """A `directory` config section (its service account's password is SERVICE_PASSWORD);
        None: no directory, the people are written into the database."""
        self.crews_wanted = crews
        self.ports = [free_port() for _ in range(nodes)]
        """One gunicorn node per port, all on the same database, blob store and token."""
        self.port = self.ports[0]
        self.url = f"http://127.0.0.1:{self.port}"
        """The first node's; with `proxy`, nginx's in front of every node (set at start)."""
        self.use_proxy = proxy
        self._proxy: NginxProxy | None = None
        self.mail = MailBox()
        self.root = base / "site"
        self.config_path = self.root / "config.yaml"
        self.crews: list[Crew] = []
        self._servers: list[subprocess.Popen[bytes]] = []
        self._services: Services | None = None
        self._config: AppConfig | None = None
        self.server_log = base / "gunicorn.log"
        """The first node's log (the access log bench/flow.py reads)."""

    @property
    def services(self) -> Services:
        """This process's own services on the same database, blob store and token."""
        assert self._services is not None
        return self._services

    @property
    def config(self) -> AppConfig:
        assert self._config is not None
        return self._config

    def start(self) -> None:
        self._softhsm()
        self.mail.start()
        self._appliance("init", "--dir", str(self.root), "--port", str(self.port))
        raw = yaml.safe_load(self.config_path.read_text())
        raw["mail"] = {
            "enabled": True,
            "host": "127.0.0.1",
            "port": self.mail.port,
            "starttls": False,
            "from_address": "esign@example.org",
        }
        if self.database_url is not None:
            raw["database"] = {"url": self.database_url}
        if self.directory is not None:
            password = self.root / "ldap-bind-password"
            password.write_text(SERVICE_PASSWORD)
            password.chmod(0o600)
            raw["directory"] = {**self.directory, "bind_password_file": str(password)}
        # all the bench's signers sign from 127.0.0.1, far more often than a person would
        raw["codes"] = {"per_signer_per_hour": 1000, "per_address_per_hour": 100_000, "lifetime_seconds": 600}
        # no directory here: the people written below stay vouched for through the run
        raw.setdefault("auth", {})["directory_recheck_minutes"] = 24 * 60
        self.config_path.write_text(yaml.safe_dump(raw, allow_unicode=True))
        for command in (("hsm", "init-token"), ("migrate",), ("pki", "init")):
            self._appliance("--config", str(self.config_path), *command)
        self._config = load_config(self.config_path, environ={})
        self._services = build_services(self._config)
        self._people()
        for number, port in enumerate(self.ports):
            self._serve(number, port)
        if self.use_proxy:
            self._proxy = start_upstream(self.base / "nginx", self.ports)
            self.url = self._proxy.url

    def _softhsm(self) -> None:
        tokens = self.base / "tokens"
        tokens.mkdir()
        conf = self.base / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
        # before this process loads the module, and inherited by every command started here
        os.environ["SOFTHSM2_CONF"] = str(conf)

    def _appliance(self, *args: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "appliance", *args], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"appliance {' '.join(args)} failed: {result.stderr.strip()[-2000:]}")

    def _people(self) -> None:
        now = datetime.now(UTC)
        services = self.services
        with services.sessions.begin() as session:
            org = Organisation(name="北京示例科技有限公司", code="bench", created_at=now)
            session.add(org)
            session.flush()
            org_id = org.id
        agreement = certificate_agreement("zh_Hans_CN")
        consent = Consent(agreement.version, agreement.sha256, agreement.locale)
        names = iter(SIGNER_NAMES * (1 + 2 * self.crews_wanted // len(SIGNER_NAMES)))
        for crew in range(self.crews_wanted):
            initiator = self._person(f"initiator{crew}", f"Initiator {crew}", org_id, Role.INITIATOR)
            signers = (
                self._person(f"signer{crew}a", next(names), org_id),
                self._person(f"signer{crew}b", next(names), org_id),
            )
            for signer in signers:
                principal = Principal(
                    signer.user_id, signer.username, signer.display_name, frozenset({Role.EMPLOYEE}), False
                )
                apply_personal_certificate(services.workflow, principal, CLIENT, consent)
            self.crews.append(Crew(initiator, signers))

    def _person(self, username: str, name: str, org_id: int, *roles: Role) -> Person:
        email = f"{username}@example.org"
        user_id = provision_person(self.services, username, name, email, org_id, *roles)
        token = self.services.auth.create_token(user_id, "bench", CLIENT).token
        return Person(user_id, username, name, email, token)

    def _serve(self, number: int, port: int) -> None:
        config = self.config_path
        if number:  # the same config but for the port
            raw = yaml.safe_load(self.config_path.read_text())
            raw.setdefault("server", {})["port"] = port
            config = self.root / f"config-node{number}.yaml"
            config.write_text(yaml.safe_dump(raw, allow_unicode=True))
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(self.base / f"metrics-{number}"),
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            # only the access log's format changes: each request's time inside its worker
            "GUNICORN_CMD_ARGS": f"--access-logformat '{ACCESS_MARK} %(m)s %(U)s %(s)s %(D)s'",
        }
        log_path = self.server_log if number == 0 else self.base / f"gunicorn-{number}.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "appliance", "--config", str(config), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: stop() ends the master and workers
            )
        self._servers.append(server)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"appliance serve exited: {log_path.read_text(errors='replace')[-3000:]}")
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"appliance serve did not answer within {START_SECONDS} s")

    def server_cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by every node's gunicorn master and live workers."""
        masters = {str(server.pid) for server in self._servers}
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # a process that ended while we looked
            if stat.parent.name in masters or fields[1] in masters:
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def server_log_size(self) -> int:
        return self.server_log.stat().st_size

    def sign_request_seconds(self, since: int) -> list[float]:
        """Time inside a worker of each successful sign request logged after offset `since`."""
        with self.server_log.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        return [int(found.group(1)) / 1e6 for found in SIGN_REQUEST.finditer(text)]

    def server_log_tail(self, lines: int = 30) -> str:
        text = self.server_log.read_text(errors="replace") if self.server_log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self._proxy is not None:
            self._proxy.stop()
        for server in self._servers:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait(timeout=10)
        if self._services is not None:
            self._services.engine.dispose()
        self.mail.stop()


@contextmanager
def running_site(
    base: Path,
    crews: int,
    postgresql: str | None = None,
    directory: dict[str, Any] | None = None,
    *,
    nodes: int = 1,
    proxy: bool = False,
) -> Iterator[Site]:
    """The site, stopped on the way out whatever happens (an error, Ctrl-C, SIGTERM); with
    `postgresql` (a database URL), on a schema of its own in that database, dropped after;
    `nodes` gunicorn nodes, behind nginx with `proxy`."""
    with ExitStack() as stack:
        url = stack.enter_context(scratch_schema(postgresql, "bench_flow")) if postgresql else None
        site = Site(base, crews, url, directory, nodes=nodes, proxy=proxy)
        stack.callback(site.stop)
        site.start()
        yield site
