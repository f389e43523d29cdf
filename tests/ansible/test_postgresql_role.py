"""The PostgreSQL role against this machine's local server: creates a throwaway login
role and database (password works over TCP), a second run changes nothing; then both are
dropped again."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.ansible.conftest import require_tools, role_run
from tests.conftest import require_backend

pytestmark = [pytest.mark.slow, pytest.mark.pg]


def psql_as_postgres(sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-A", "-t", "-c", sql],
        capture_output=True,
        text=True,
        check=False,
    )


def test_postgresql_role_creates_role_and_database_idempotently(tmp_path: Path) -> None:
    require_tools("psql", "pg_lsclusters", "runuser")
    require_backend(
        "PostgreSQL", bool(os.environ.get("APPLIANCE_TEST_PG_URL")), "APPLIANCE_TEST_PG_URL is not set"
    )
    if psql_as_postgres("SELECT 1").returncode != 0:
        pytest.skip("no local PostgreSQL cluster reachable as the postgres OS user")
    name = f"apltest_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)
    variables = {
        "appliance_postgresql_mode": "local",
        "appliance_postgresql_manage_packages": False,
        "appliance_postgresql_service_manager": "pg_ctlcluster",
        "appliance_postgresql_database": name,
        "appliance_postgresql_role": name,
        "appliance_postgresql_password": password,
    }
    try:
        first = role_run("appliance_postgresql", variables, tmp_path)
        assert first.returncode == 0, first.report()
        assert first.changed >= 2
        assert password not in first.output
        login = subprocess.run(
            [
                "psql",
                "-X",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-U",
                name,
                "-d",
                name,
                "-c",
                "SELECT current_user",
            ],
            env={**os.environ, "PGPASSWORD": password},
            capture_output=True,
            text=True,
            check=False,
        )
        assert login.returncode == 0, login.stderr
        assert login.stdout.strip() == name
        second = role_run("appliance_postgresql", variables, tmp_path)
        assert second.returncode == 0 and second.changed == 0, second.changed_tasks()
    finally:
        psql_as_postgres(f'DROP DATABASE IF EXISTS "{name}"')
        psql_as_postgres(f'DROP ROLE IF EXISTS "{name}"')
