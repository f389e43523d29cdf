"""Login latency: our LdapDirectory.authenticate() against a bare ldap3 search+bind baseline.

Starts its own slapd on a free 127.0.0.1 port (the test fixture's configuration, StartTLS
with a throwaway CA) holding 10,000 extra people in 100 groups (one level of nesting),
then runs N sequential logins of random people both ways, interleaved, in one run:

* ours: `authenticate()` - pooled service connection for the search, pooled bind
  connection for the password check, plus group resolution and role mapping;
* baseline: a fresh ldap3 connection per login: open, StartTLS, bind as the service
  account, search the person, bind as the person, unbind.

Not a test. Usage: .venv/bin/python bench/login.py [--people 10000] [--logins 500]
"""

from __future__ import annotations

import argparse
import random
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--logins", type=int, default=500)
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
            directory.authenticate(f"p{i:05d}", f"pw-{i:05d}")
            baseline_login(server, f"p{i:05d}", f"pw-{i:05d}")
        ours: list[float] = []
        base: list[float] = []
        for i in picks:  # interleaved so both see the same machine load
            username, password = f"p{i:05d}", f"pw-{i:05d}"
            t0 = time.perf_counter()
            person = directory.authenticate(username, password)
            t1 = time.perf_counter()
            ok = baseline_login(server, username, password)
            t2 = time.perf_counter()
            assert ok and person.username == username and person.roles, (username, person.roles)
            ours.append((t1 - t0) * 1000)
            base.append((t2 - t1) * 1000)
        directory.close()
    finally:
        slapd.stop()
    p50_ours, p99_ours = statistics.median(ours), percentile(ours, 0.99)
    p50_base, p99_base = statistics.median(base), percentile(base, 0.99)
    print(f"{args.logins} sequential logins, {args.people} people, StartTLS on 127.0.0.1")
    print(f"  ours     authenticate(): p50 {p50_ours:6.2f} ms  p99 {p99_ours:6.2f} ms  (with nested groups)")
    print(f"  baseline fresh ldap3:    p50 {p50_base:6.2f} ms  p99 {p99_base:6.2f} ms")
    ratio = p50_ours / p50_base
    print(f"  p50 ratio ours/baseline: {ratio:.2f} (target <= 1.2)  -> {'OK' if ratio <= 1.2 else 'MISSED'}")
    print(f"  p99 ours < 50 ms: {'OK' if p99_ours < 50 else 'MISSED'}")


if __name__ == "__main__":
    main()
