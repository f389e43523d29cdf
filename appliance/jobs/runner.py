"""Claiming and running due jobs; a failed job is recorded and does not stop the others."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from appliance.db import transaction
from appliance.errors import ApplianceError
from appliance.jobs.registry import Job
from appliance.models import JobRun
from appliance.services import Services

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=30)
"""How long a claim lasts; a runner that died mid-job frees the job after this."""


class Outcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    NOT_DUE = "not_due"
    RUNNING_ELSEWHERE = "running_elsewhere"


@dataclass(frozen=True)
class JobOutcome:
    name: str
    outcome: Outcome
    summary: str = ""


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_due_jobs(
    services: Services, jobs: Sequence[Job], *, force: bool = False, runner: str | None = None
) -> list[JobOutcome]:
    """Run every job whose interval has passed (all of them with `force`), one at a time."""
    runner = runner or runner_id()
    outcomes = []
    for job in jobs:
        claimed = _claim(services, job, runner, force)
        if claimed is not None:
            outcomes.append(JobOutcome(job.name, claimed))
            continue
        outcomes.append(_run(services, job, runner))
    return outcomes


def _ensure_row(services: Services, name: str) -> None:
    try:
        with transaction(services.sessions) as session:
            if session.get(JobRun, name) is None:
                session.add(JobRun(name=name))
    except IntegrityError:
        pass  # another node created it at the same moment


def _claim(services: Services, job: Job, runner: str, force: bool) -> Outcome | None:
    """Take the job's row for this runner; returns why not when it cannot or need not run."""
    _ensure_row(services, job.name)
    now = services.clock.now()
    with transaction(services.sessions) as session:
        row = session.execute(select(JobRun).where(JobRun.name == job.name).with_for_update()).scalar_one()
        if row.locked_until is not None and row.locked_until > now:
            return Outcome.RUNNING_ELSEWHERE
        if not force and row.last_finished_at is not None and row.last_finished_at + job.interval > now:
            return Outcome.NOT_DUE
        row.locked_by = runner
        row.locked_until = now + LEASE
        row.last_started_at = now
    return None


def _run(services: Services, job: Job, runner: str) -> JobOutcome:
    try:
        summary = job.run(services)
        outcome = Outcome.DONE
    except ApplianceError as exc:
        summary, outcome = exc.detail, Outcome.FAILED
        log.warning("job %s failed: %s", job.name, exc.detail, exc_info=exc.__cause__ is not None)
    except Exception:
        summary, outcome = "unexpected error; see the log", Outcome.FAILED
        log.exception("job %s failed", job.name)
    with transaction(services.sessions) as session:
        row = session.get(JobRun, job.name)
        if row is not None and row.locked_by == runner:
            row.locked_by = None
            row.locked_until = None
            row.last_finished_at = services.clock.now()
            row.last_status = outcome.value
            row.last_summary = summary[:2000]
    return JobOutcome(job.name, outcome, summary)
