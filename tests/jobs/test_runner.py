"""`appliance jobs run-due`: due jobs run once, across runners; failures are recorded."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from appliance.audit import verify_chain
from appliance.db import create_db_engine, migrate_database
from appliance.errors import InvalidInput, Unavailable
from appliance.jobs import Job, default_jobs, run_due_jobs
from appliance.jobs.runner import LEASE, Outcome
from appliance.models import AuditEvent, JobRun
from appliance.services import Services, build_services
from appliance.workflow.sweep import sweep_unreferenced_blobs
from tests.conftest import ConfigFactory
from tests.fakes.clock import FakeClock

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def services(any_db_url: str, write_config: ConfigFactory, clock: FakeClock) -> Services:
    _, cfg = write_config(database={"url": any_db_url})
    migrate_database(create_db_engine(cfg.database))
    return build_services(cfg, clock=clock)


def _counting_job(calls: list[str], name: str = "count", interval: timedelta = timedelta(hours=1)) -> Job:
    def run(services: Services) -> str:
        calls.append(name)
        return f"call {len(calls)}"

    return Job(name, interval, run)


def test_job_runs_when_due_and_not_before(services: Services, clock: FakeClock) -> None:
    calls: list[str] = []
    job = _counting_job(calls)
    assert [o.outcome for o in run_due_jobs(services, [job])] == [Outcome.DONE]
    assert [o.outcome for o in run_due_jobs(services, [job])] == [Outcome.NOT_DUE]
    clock.set(T0 + timedelta(minutes=59))
    assert [o.outcome for o in run_due_jobs(services, [job])] == [Outcome.NOT_DUE]
    clock.set(T0 + timedelta(hours=1))
    assert [o.outcome for o in run_due_jobs(services, [job])] == [Outcome.DONE]
    assert [o.outcome for o in run_due_jobs(services, [job], force=True)] == [Outcome.DONE]
    assert calls == ["count"] * 3
    with services.sessions() as session:
        row = session.get(JobRun, "count")
        assert row is not None and row.last_status == "done" and row.locked_by is None
        assert row.last_summary == "call 3"


def test_failure_is_recorded_and_other_jobs_still_run(services: Services) -> None:
    calls: list[str] = []

    def broken(_: Services) -> str:
        raise Unavailable("the HSM did not answer")

    outcomes = run_due_jobs(services, [Job("broken", timedelta(hours=1), broken), _counting_job(calls)])
    assert [(o.name, o.outcome, o.summary) for o in outcomes] == [
        ("broken", Outcome.FAILED, "the HSM did not answer"),
        ("count", Outcome.DONE, "call 1"),
    ]
    with services.sessions() as session:
        row = session.get(JobRun, "broken")
        assert row is not None and row.last_status == "failed" and row.locked_until is None


def test_a_job_running_on_another_node_is_skipped(services: Services) -> None:
    started = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def slow(_: Services) -> str:
        calls.append("slow")
        started.set()
        release.wait(timeout=30)
        return "slow done"

    job = Job("slow", timedelta(hours=1), slow)
    first: list[Outcome] = []
    other_node = threading.Thread(
        target=lambda: first.extend(o.outcome for o in run_due_jobs(services, [job], runner="node-a:1"))
    )
    other_node.start()
    assert started.wait(timeout=30)
    second = run_due_jobs(services, [job], force=True, runner="node-b:2")
    release.set()
    other_node.join(timeout=30)
    assert [o.outcome for o in second] == [Outcome.RUNNING_ELSEWHERE]
    assert first == [Outcome.DONE] and calls == ["slow"]


def test_a_dead_runners_claim_lapses(services: Services, clock: FakeClock) -> None:
    calls: list[str] = []
    with services.sessions.begin() as session:
        session.add(JobRun(name="count", locked_by="gone:1", locked_until=T0 + LEASE))
    job = _counting_job(calls)
    assert [o.outcome for o in run_due_jobs(services, [job])] == [Outcome.RUNNING_ELSEWHERE]
    clock.set(T0 + LEASE + timedelta(seconds=1))
    assert [o.outcome for o in run_due_jobs(services, [job])] == [Outcome.DONE]


def test_cli_runs_the_crl_job_once_per_interval(pki_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    command = [sys.executable, "-m", "appliance", "--config", str(pki_env.config_path), "jobs"]
    listing = subprocess.run([*command, "list"], capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert [line.split()[0] for line in listing.stdout.splitlines()] == [
        "login-throttle-purge",
        "contract-deadlines",
        "crl-refresh",
        "log-checkpoint",
        "certificate-renewals",
        "archive-timestamps",
        "retention",
        "blob-sweep",
    ]
    first = subprocess.run([*command, "run-due", "--force"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "crl-refresh: done - CRL " in first.stdout
    assert "log-checkpoint: done - checkpoint 1 signed at record " in first.stdout
    assert (
        "certificate-renewals: done - told 0 holders and the admins of 0 seals that a certificate is due"
        in first.stdout
    )
    assert "login-throttle-purge: done - purged 0 expired login counters" in first.stdout
    assert (
        "contract-deadlines: done - expired 0, reminded 0, applied 0 automatic seals, "
        "made 0 certificates of completion, "
        "purged 0 idempotent answers" in first.stdout
    )
    assert (
        "archive-timestamps: done - read 0 due files, renewed 0 archive timestamps, 0 failed" in first.stdout
    )
    assert (
        "retention: done - told the people of 0 contracts of their deletion, deleted 0 (0 files), archived 0"
        in first.stdout
    )
    assert "blob-sweep: done - removed 0 unreferenced blobs, kept 0" in first.stdout
    again = subprocess.run([*command, "run-due"], capture_output=True, text=True, timeout=120)
    assert again.stdout.strip().splitlines() == [
        "login-throttle-purge: not_due",
        "contract-deadlines: not_due",
        "crl-refresh: not_due",
        "log-checkpoint: not_due",
        "certificate-renewals: not_due",
        "archive-timestamps: not_due",
        "retention: not_due",
        "blob-sweep: not_due",
    ]
    unknown = subprocess.run(
        [*command, "run-due", "--job", "nope"], capture_output=True, text=True, timeout=120
    )
    assert unknown.returncode == 2
    assert (
        "unknown job nope; jobs: login-throttle-purge, contract-deadlines, crl-refresh, log-checkpoint, "
        "certificate-renewals, archive-timestamps, retention, blob-sweep" in unknown.stderr
    )


def test_only_the_purge_deadline_and_sweep_jobs_without_hsm_or_directory(services: Services) -> None:
    assert [job.name for job in default_jobs(services)] == [
        "login-throttle-purge",
        "contract-deadlines",
        "retention",
        "blob-sweep",
    ]


def test_the_sweep_job_removes_old_unreferenced_blobs_and_logs_it(
    services: Services, clock: FakeClock
) -> None:
    root = services.config.storage.path

    def stored_ago(data: bytes, age: timedelta) -> str:
        name = services.blobs.put(io.BytesIO(data))
        when = (clock.now() - age).timestamp()
        os.utime(root / name[:2] / name, (when, when))
        return name

    old = stored_ago(b"left by a signing killed before its commit", timedelta(hours=2))
    in_flight = stored_ago(b"a signing's blob, its commit still to come", timedelta(minutes=10))
    sweep = [job for job in default_jobs(services) if job.name == "blob-sweep"]
    outcomes = run_due_jobs(services, sweep)
    assert [(o.outcome, o.summary) for o in outcomes] == [
        (Outcome.DONE, "removed 1 unreferenced blobs, kept 0")
    ]
    assert not services.blobs.exists(old) and services.blobs.exists(in_flight)
    with pytest.raises(InvalidInput, match="grace period"):
        sweep_unreferenced_blobs(services.workflow, older_than=timedelta(seconds=-1))
    with services.sessions() as session:
        logged = session.scalars(select(AuditEvent).where(AuditEvent.action == "blobs.swept")).all()
        assert [json.loads(e.details) for e in logged] == [{"removed": 1, "older_than_seconds": 3600}]
        assert verify_chain(session) == []
