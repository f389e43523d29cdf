"""Login latency: the directory step and the whole HTTP sign-in, each against a bare ldap3
search+bind baseline measured in the same run.

Starts its own slapd on a free 127.0.0.1 port (the test fixture's configuration, StartTLS
with a throwaway CA) holding 10,000 extra people in 100 groups (one level of nesting), then:

1. N sequential logins of random people both ways, interleaved:
   * ours: `find_account()` then `verify_password()` - pooled service connection for the search, pooled bind
     connection for the password check, plus group resolution and role mapping;
   * baseline: a fresh ldap3 connection per login: open, StartTLS, bind as the service
     account, search the person, bind as the person, unbind.
2. The HTTP path: `appliance serve` (gunicorn, 2 workers, SQLite) on a free port, and
   `POST /login` (with its CSRF token and cookie from a GET before it, not timed) at 1 and
   at 4 concurrent clients, against the baseline at the same concurrency.

Not a test. Usage: .venv/bin/python bench/login.py [--people 10000] [--logins 500] [--http-logins 400]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ldap3 import SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.utils.conv import escape_filter_chars

from appliance.clock import SystemClock
from appliance.config import DirectoryConfig
from appliance.directory import LdapDirectory
from tests.fixtures.ldap import (
    OPENLDAP_SERVICE_DN,
    OPENLDAP_SUFFIX,
    SERVICE_PASSWORD,
    openldap_section,
    start_slapd,
)

BASE = f"ou=bench,ou=people,{OPENLDAP_SUFFIX}"
GROUPS = f"ou=groups,{OPENLDAP_SUFFIX}"


def write_people(path: Path, people: int) -> None:
    lines = [f"dn: {BASE}", "objectClass: organizationalUnit", "ou: bench", ""]
    for i in range(people):
        lines += [
            f"dn: uid=p{i:05d},{BASE}",
            "objectClass: inetOrgPerson",
            f"uid: p{i:05d}",
            f"cn: Person {i}",
            f"sn: {i}",
            f"mail: p{i:05d}@example.org",
            f"departmentNumber: D{i % 20}",
            f"userPassword: pw-{i:05d}",
            "",
        ]
    for g in range(100):
        lines += [f"dn: cn=bench-{g:03d},{GROUPS}", "objectClass: groupOfNames", f"cn: bench-{g:03d}"]
        lines += [f"member: uid=p{i:05d},{BASE}" for i in range(g, people, 100)]
        lines.append("")
    # one level of nesting: every bench group is inside cn=employees (role employee)
    lines += [f"dn: cn=bench-all,{GROUPS}", "objectClass: groupOfNames", "cn: bench-all"]
    lines += [f"member: cn=bench-{g:03d},{GROUPS}" for g in range(100)]
    lines.append("")
    path.write_text("\n".join(lines))


def baseline_login(server: Server, username: str, password: str) -> bool:
    connection = Connection(
        server, user=OPENLDAP_SERVICE_DN, password=SERVICE_PASSWORD, authentication=SIMPLE, receive_timeout=5
    )
    connection.open(read_server_info=False)
    connection.start_tls(read_server_info=False)
    try:
        if not connection.bind(read_server_info=False):
            raise RuntimeError("service bind failed")
        connection.search(
            BASE,
            f"(&(objectClass=inetOrgPerson)(uid={escape_filter_chars(username)}))",
            SUBTREE,
            attributes=["1.1"],
        )
        entries = [e for e in connection.response if e.get("type") == "searchResEntry"]
        if len(entries) != 1:
            return False
        return bool(connection.rebind(user=entries[0]["dn"], password=password, read_server_info=False))
    finally:
        connection.unbind()


class Site:
    """`appliance serve` (gunicorn, 2 workers, SQLite) wired to the bench slapd."""

    def __init__(self, work: Path, section: dict[str, object]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        site = work / "site"
        self._appliance("init", "--dir", str(site), "--port", str(self.port))
        self.config = site / "config.yaml"
        raw = yaml.safe_load(self.config.read_text())
        raw.pop("hsm")  # sign-in needs no HSM
        secret = site / "secrets" / "ldap-bind-password"
        secret.write_text(SERVICE_PASSWORD)
        raw["directory"] = {**section, "bind_password_file": str(secret)}
        # the bench signs everyone in from 127.0.0.1: keep the per-address ceiling out of the way
        raw.setdefault("auth", {})["max_failed_logins"] = 100
        self.config.write_text(yaml.safe_dump(raw))
        self._appliance("--config", str(self.config), "migrate")
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        }
        self._server = subprocess.Popen(
            [sys.executable, "-m", "appliance", "--config", str(self.config), "serve"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self._request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("appliance serve did not answer within 30 s")

    def _appliance(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "appliance", *args], check=True, capture_output=True)

    def _request(
        self, method: str, path: str, body: str | None = None, cookie: str | None = None
    ) -> tuple[int, str, str | None]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Cookie": cookie} if cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
            set_cookie = response.getheader("Set-Cookie")
            return response.status, text, set_cookie.split(";", 1)[0] if set_cookie else None
        finally:
            connection.close()

    def login(self, username: str, password: str) -> float:
        """One sign-in; returns the milliseconds of the POST alone."""
        status, page, cookie = self._request("GET", "/login")
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        if status != 200 or token is None or cookie is None:
            raise RuntimeError(f"GET /login answered {status}")
        fields = {"csrf_token": token.group(1), "username": username, "password": password}
        form = urllib.parse.urlencode(fields)
        started = time.perf_counter()
        status, _page, _cookie = self._request("POST", "/login", form, cookie)
        elapsed = (time.perf_counter() - started) * 1000
        if status != 303:
            raise RuntimeError(f"POST /login for {username} answered {status}")
        return elapsed

    def stop(self) -> None:
        os.killpg(self._server.pid, signal.SIGTERM)
        self._server.wait(timeout=30)


def concurrently(login: Callable[[int], float], picks: list[int], clients: int) -> tuple[list[float], float]:
    """Run `login(i)` for every pick on `clients` threads; (latencies in ms, logins per second)."""
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(picks)
    errors: list[BaseException] = []

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                i = queue.pop()
            try:
                elapsed = login(i)
            except BaseException as exc:
                errors.append(exc)
                return
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return latencies, len(latencies) / wall


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def bench_http(work: Path, section: dict[str, object], server: Server, people: int, logins: int) -> None:
    site = Site(work, section)
    try:
        rng = random.Random(7)
        picks = [rng.randrange(people) for _ in range(logins)]
        for i in picks[:20]:  # warm-up: both workers, their directory pools, the first user rows
            site.login(f"p{i:05d}", f"pw-{i:05d}")
        print(f"HTTP sign-in through gunicorn (2 workers, SQLite), {logins} logins per row")
        for clients in (1, 4):
            ours, ours_rate = concurrently(lambda i: site.login(f"p{i:05d}", f"pw-{i:05d}"), picks, clients)
            base, base_rate = concurrently(
                lambda i: timed(lambda: baseline_login(server, f"p{i:05d}", f"pw-{i:05d}")), picks, clients
            )
            print(
                f"  {clients} client(s): POST /login p50 {statistics.median(ours):6.1f} ms "
                f"p95 {percentile(ours, 0.95):6.1f} ms {ours_rate:6.1f}/s | bare ldap3 bind p50 "
                f"{statistics.median(base):6.1f} ms {base_rate:6.1f}/s | p50 ratio "
                f"{statistics.median(ours) / statistics.median(base):.2f}"
            )
        print("  target: POST /login p50 at 4 clients under 60 ms")
    finally:
        site.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--logins", type=int, default=500)
    parser.add_argument("--http-logins", type=int, default=400)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-login-"))
    seed = work / "people.ldif"
    write_people(seed, args.people)
    started = time.perf_counter()
    slapd = start_slapd(work, extra_ldif={OPENLDAP_SUFFIX: seed})
    print(
        f"slapd with {args.people} extra people ready in {time.perf_counter() - started:.1f} s at {slapd.url}"
    )
    try:
        section = openldap_section(slapd, user_base_dn=f"ou=people,{OPENLDAP_SUFFIX}", group_base_dn=GROUPS)
        section["role_groups"] = {"employee": [f"cn=bench-all,{GROUPS}"]}
        directory = LdapDirectory(DirectoryConfig.model_validate(section), SERVICE_PASSWORD, SystemClock())
        host, port = slapd.url.removeprefix("ldap://").split(":")
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(slapd.tls.ca_file))
        server = Server(host, port=int(port), tls=tls, get_info="NO_INFO", connect_timeout=3)
        rng = random.Random(42)
        picks = [rng.randrange(args.people) for _ in range(args.logins)]
        # warm-up: the pool, slapd's caches, and Python's imports for both paths
        for i in picks[:20]:
            directory.verify_password(directory.find_account(f"p{i:05d}"), f"pw-{i:05d}")
            baseline_login(server, f"p{i:05d}", f"pw-{i:05d}")
        ours: list[float] = []
        base: list[float] = []
        for i in picks:  # interleaved so both see the same machine load
            username, password = f"p{i:05d}", f"pw-{i:05d}"
            t0 = time.perf_counter()
            person = directory.verify_password(directory.find_account(username), password)
            t1 = time.perf_counter()
            ok = baseline_login(server, username, password)
            t2 = time.perf_counter()
            assert ok and person.username == username and person.roles, (username, person.roles)
            ours.append((t1 - t0) * 1000)
            base.append((t2 - t1) * 1000)
        directory.close()
        report_directory(args, ours, base)
        bench_http(work, section, server, args.people, args.http_logins)
    finally:
        slapd.stop()


def report_directory(args: argparse.Namespace, ours: list[float], base: list[float]) -> None:
    p50_ours, p99_ours = statistics.median(ours), percentile(ours, 0.99)
    p50_base, p99_base = statistics.median(base), percentile(base, 0.99)
    print(f"{args.logins} sequential logins, {args.people} people, StartTLS on 127.0.0.1")
    print(f"  ours     find+verify:    p50 {p50_ours:6.2f} ms  p99 {p99_ours:6.2f} ms  (with nested groups)")
    print(f"  baseline fresh ldap3:    p50 {p50_base:6.2f} ms  p99 {p99_base:6.2f} ms")
    ratio = p50_ours / p50_base
    print(f"  p50 ratio ours/baseline: {ratio:.2f} (target <= 1.2)  -> {'OK' if ratio <= 1.2 else 'MISSED'}")
    print(f"  p99 ours < 50 ms: {'OK' if p99_ours < 50 else 'MISSED'}")


if __name__ == "__main__":
    main()
