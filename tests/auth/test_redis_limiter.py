"""Flask-Limiter on the sign-in endpoints with Redis storage, shared by independent app instances."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.auth.conftest import LdapAppFactory, post_login
from tests.conftest import require_backend
from tests.fixtures.ldap import free_port

pytestmark = pytest.mark.ldap


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port, stopped afterwards."""
    binary = shutil.which("redis-server")
    require_backend("Redis", binary is not None, "redis-server is not installed")
    assert binary is not None
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_login_requests_are_limited_per_address_across_instances(
    ldap_app: LdapAppFactory, redis_url: str
) -> None:
    overrides = {"auth": {"max_failed_logins": 2, "rate_limit_storage": redis_url}}
    first, second = ldap_app(**overrides), ldap_app(**overrides)  # two apps, one database, one Redis
    # a fresh address per run keeps parallel and repeated runs apart in the shared Redis
    address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
    a, b = first.client(), second.client()
    statuses = []
    for i in range(8):  # limit: 2 x 4 = 8 sign-in POSTs per minute per address, successes included
        client = a if i % 2 == 0 else b
        statuses.append(post_login(client, "alice", "alice-Secret-1", REMOTE_ADDR=address).status_code)
    assert statuses == [303] * 8
    limited = post_login(b, "alice", "alice-Secret-1", REMOTE_ADDR=address)
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    also_limited = a.post(
        "/api/v1/auth/tokens",
        json={"username": "alice", "password": "alice-Secret-1"},
        environ_overrides={"REMOTE_ADDR": address},
    )
    assert also_limited.status_code == 429 and also_limited.mimetype == "application/problem+json"
    # another address is not affected
    other = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
    assert post_login(a, "alice", "alice-Secret-1", REMOTE_ADDR=other).status_code == 303
